/* The guard's hashed n-grams in C: the same buckets as features.grams, in one pass.
 *
 * features.py defines the features and keeps a numpy implementation that is
 * the reference (and the fallback when this module is not built).  This file
 * computes exactly the same buckets, positions and order, so the shipped
 * weights score the same either way; tests/unit/guard/test_ngrams_c.py checks
 * that over the guard's corpus and edge cases.
 *
 *   grams(norm, bits) -> (char_idx, char_pos, word_idx, word_pos)
 *       four bytes objects, each an array of native int64, for a normalised
 *       text: every character 3-, 4- and 5-gram (all 3-grams, then 4-grams,
 *       then 5-grams) and every word 1-gram then 2-gram, each bucket kept once
 *       per kind at its first occurrence in that order.
 *   window(norm, bits) -> (idx, nchar) or None
 *       the same buckets as one array (character n-grams first, nchar of
 *       them), for a text scored as one window; None when the text has fewer
 *       than five characters or no word, as features.first_buckets.
 *   window_sums(norm, bits, wt, k) -> (nchar, nword, sums) or None
 *       for a text scored as one window: how many character and word n-grams
 *       it keeps and, per category, the sum of their weights (sums holds k
 *       character sums, then k word sums).  wt is the weight matrix
 *       transposed, 2**bits rows of k float32.  None as for window.
 *   span_sums(norm, bits, wt, k, spans) -> bytes
 *       for every span (start, end) of the normalised text, the per-category
 *       linear score before the bias: for each kind, the sum of the weights of
 *       its n-grams starting inside the span over the square root of their
 *       count; k rows of len(spans) float64, as LinearModel.logits computes it.
 *
 * Arithmetic is on uint64_t and wraps modulo 2**64, as numpy's uint64 does.
 * A text of up to RELEASE_GIL_CHARS characters (a window takes a few
 * microseconds) is hashed holding the GIL: releasing it on the event loop's
 * thread would hand it to any waiting thread for up to a switch interval.
 * Longer texts (which the guard scores in a worker thread) are hashed and
 * summed with the GIL released, so the event loop keeps running.  The
 * scratch table is per thread.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static const uint64_t P = 1000003ULL;
static const uint64_t MIX = 0x9E3779B97F4A7C15ULL;
static const uint64_t WORD_SALT = 0x5851F42D4C957F2DULL;
static const uint64_t BIGRAM_MUL = 0x2545F4914F6CDD1DULL;
static const int CHAR_NS[3] = {3, 4, 5};
#define MAXK 5

static uint64_t q_inv[MAXK]; /* P^-t modulo 2**64, t = 0..MAXK-1 */
static uint64_t p_inv;

#define RELEASE_GIL_CHARS 20000

/* One scratch table of 2**bits positions per thread (calls may run without the GIL). */
static _Thread_local int32_t *table = NULL;
static _Thread_local int table_bits = 0;

static inline uint64_t bucket(uint64_t h, uint64_t salt, int bits) {
    uint64_t x = (h + salt) * MIX;
    x ^= x >> 29;
    x *= MIX;
    return x >> (64 - bits);
}

static inline int is_word(uint32_t c) {
    /* ASCII letters (lower case only: texts are normalised), digits and '_', or anything beyond ASCII. */
    return c >= 128 || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int ensure_table(int bits) {
    if (table != NULL && table_bits == bits)
        return 0;
    int32_t *t = (int32_t *)PyMem_RawRealloc(table, sizeof(int32_t) * ((size_t)1 << bits));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    table = t;
    table_bits = bits;
    return 0;
}

/* Keep each bucket at its first occurrence in array order, as features._first does:
 * a later n-gram is kept only when its position equals that of the first one with
 * its bucket.  Compacts idx/pos in place and returns the new length. */
static Py_ssize_t keep_first(int64_t *idx, int64_t *pos, Py_ssize_t n) {
    for (Py_ssize_t i = n - 1; i >= 0; i--)
        table[idx[i]] = (int32_t)pos[i];
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (table[idx[i]] == (int32_t)pos[i]) {
            idx[m] = idx[i];
            pos[m] = pos[i];
            m++;
        }
    }
    return m;
}

typedef struct {
    int64_t *cidx, *cpos, *widx, *wpos; /* one allocation, cut in four */
    Py_ssize_t nc, nw;                  /* counts after de-duplication */
} Grams;

/* Fill g with the n-grams of text (n characters); 0 on success, -1 with an exception set. */
static int compute(PyObject *text, int bits, Grams *g) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    memset(g, 0, sizeof(*g));
    if (n > (Py_ssize_t)INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "text too long");
        return -1;
    }
    /* Exactly the character n-grams there are, and room for every word n-gram: a text of n
     * characters has at most (n + 1) / 2 words, so at most n unigrams and bigrams together.
     * One buffer holds the four arrays. */
    Py_ssize_t cap_c = 1, cap_w = n + 1;
    for (int s = 0; s < 3; s++)
        cap_c += n >= CHAR_NS[s] ? n - CHAR_NS[s] + 1 : 0;
    int64_t *buf = (int64_t *)PyMem_RawMalloc(sizeof(int64_t) * (size_t)(2 * cap_c + 2 * cap_w));
    uint64_t *codes = (uint64_t *)PyMem_RawMalloc(sizeof(uint64_t) * (size_t)(n + 1));
    if (buf == NULL || codes == NULL) {
        PyMem_RawFree(buf);
        PyMem_RawFree(codes);
        PyErr_NoMemory();
        return -1;
    }
    if (ensure_table(bits) < 0) {
        PyMem_RawFree(buf);
        PyMem_RawFree(codes);
        return -1;
    }
    g->cidx = buf;
    g->cpos = buf + cap_c;
    g->widx = buf + 2 * cap_c;
    g->wpos = buf + 2 * cap_c + cap_w;
    /* From here on nothing touches a Python object but the str's immutable data. */
    PyThreadState *released = n > RELEASE_GIL_CHARS ? PyEval_SaveThread() : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t c = PyUnicode_READ(kind, data, i);
        codes[i] = (c >= '1' && c <= '9') ? (uint64_t)'0' : (uint64_t)c; /* digits 1-9 fold to 0 */
    }
    /* Character n-grams: h = sum over t < k of c[i + t] * P^-t, salted with k. */
    Py_ssize_t nc = 0;
    for (int s = 0; s < 3; s++) {
        int k = CHAR_NS[s];
        for (Py_ssize_t i = 0; i + k <= n; i++) {
            uint64_t h = 0;
            for (int t = 0; t < k; t++)
                h += codes[i + t] * q_inv[t];
            g->cidx[nc] = (int64_t)bucket(h, (uint64_t)k, bits);
            g->cpos[nc] = i;
            nc++;
        }
    }
    /* Words: maximal runs of word characters, hashed the same way over their whole length. */
    Py_ssize_t nw = 0;
    Py_ssize_t i = 0;
    while (i < n) {
        if (!is_word((uint32_t)codes[i])) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        uint64_t h = 0, q = 1;
        while (i < n && is_word((uint32_t)codes[i])) {
            h += codes[i] * q;
            q *= p_inv;
            i++;
        }
        g->widx[nw] = (int64_t)h; /* the raw hash for now; bucketed below, after the bigrams use it */
        g->wpos[nw] = start;
        nw++;
    }
    PyMem_RawFree(codes); /* the raw allocator needs no GIL */
    Py_ssize_t total_w = nw;
    if (nw > 1) {
        for (Py_ssize_t j = 0; j + 1 < nw; j++) {
            uint64_t bh = (uint64_t)g->widx[j] * BIGRAM_MUL + (uint64_t)g->widx[j + 1];
            g->widx[nw + j] = (int64_t)bucket(bh, WORD_SALT + 7, bits);
            g->wpos[nw + j] = g->wpos[j];
        }
        total_w = 2 * nw - 1;
    }
    for (Py_ssize_t j = 0; j < nw; j++)
        g->widx[j] = (int64_t)bucket((uint64_t)g->widx[j], WORD_SALT, bits);
    g->nc = keep_first(g->cidx, g->cpos, nc);
    g->nw = keep_first(g->widx, g->wpos, total_w);
    if (released != NULL)
        PyEval_RestoreThread(released);
    return 0;
}

/* 0 when bits is a bucket width the functions take, else -1 with ValueError set (the
 * scratch table holds 2**bits positions per thread; the shipped model uses 18). */
static int check_bits(int bits) {
    if (bits < 1 || bits > 24) {
        PyErr_SetString(PyExc_ValueError, "bits must be between 1 and 24");
        return -1;
    }
    return 0;
}

static int parse(PyObject *args, PyObject **text, int *bits) {
    if (!PyArg_ParseTuple(args, "Ui", text, bits))
        return -1;
    return check_bits(*bits);
}

static PyObject *as_bytes(const int64_t *a, Py_ssize_t n) {
    return PyBytes_FromStringAndSize((const char *)a, (Py_ssize_t)sizeof(int64_t) * n);
}

static PyObject *py_grams(PyObject *self, PyObject *args) {
    PyObject *text;
    int bits;
    Grams g;
    if (parse(args, &text, &bits) < 0 || compute(text, bits, &g) < 0)
        return NULL;
    PyObject *out = Py_BuildValue("(NNNN)", as_bytes(g.cidx, g.nc), as_bytes(g.cpos, g.nc),
                                  as_bytes(g.widx, g.nw), as_bytes(g.wpos, g.nw));
    PyMem_RawFree(g.cidx);
    return out;
}

static PyObject *py_window(PyObject *self, PyObject *args) {
    PyObject *text;
    int bits;
    Grams g;
    if (parse(args, &text, &bits) < 0)
        return NULL;
    if (PyUnicode_GET_LENGTH(text) < MAXK)
        Py_RETURN_NONE;
    if (compute(text, bits, &g) < 0)
        return NULL;
    PyObject *out;
    if (g.nw == 0) {
        out = Py_NewRef(Py_None);
    } else {
        PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int64_t) * (g.nc + g.nw));
        if (b != NULL) {
            char *p = PyBytes_AS_STRING(b);
            memcpy(p, g.cidx, sizeof(int64_t) * (size_t)g.nc);
            memcpy(p + sizeof(int64_t) * (size_t)g.nc, g.widx, sizeof(int64_t) * (size_t)g.nw);
        }
        out = b == NULL ? NULL : Py_BuildValue("(Nn)", b, g.nc);
    }
    PyMem_RawFree(g.cidx);
    return out;
}

/* The weight matrix argument: 2**bits rows of k float32, C-contiguous. */
static int get_weights(PyObject *obj, int bits, int k, Py_buffer *view) {
    if (k < 1 || k > 64) {
        PyErr_SetString(PyExc_ValueError, "k must be between 1 and 64");
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "f") != 0 ||
        view->len != (Py_ssize_t)sizeof(float) * ((Py_ssize_t)1 << bits) * k) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "weights must be 2**bits rows of k float32, C-contiguous");
        return -1;
    }
    return 0;
}

static PyObject *py_window_sums(PyObject *self, PyObject *args) {
    PyObject *text, *wobj;
    int bits, k;
    Py_buffer wv;
    Grams g;
    if (!PyArg_ParseTuple(args, "UiOi", &text, &bits, &wobj, &k) || check_bits(bits) < 0)
        return NULL;
    if (get_weights(wobj, bits, k, &wv) < 0)
        return NULL;
    if (PyUnicode_GET_LENGTH(text) < MAXK) {
        PyBuffer_Release(&wv);
        Py_RETURN_NONE;
    }
    if (compute(text, bits, &g) < 0) {
        PyBuffer_Release(&wv);
        return NULL;
    }
    PyObject *out = NULL;
    if (g.nw == 0) {
        out = Py_NewRef(Py_None);
    } else {
        const float *w = (const float *)wv.buf;
        double sums[128];
        for (int j = 0; j < 2 * k; j++)
            sums[j] = 0.0;
        /* In n-gram order, one category after another per n-gram: the additions numpy's
         * add.reduceat makes over the gathered rows. */
        for (Py_ssize_t i = 0; i < g.nc; i++) {
            const float *row = w + (size_t)g.cidx[i] * (size_t)k;
            for (int j = 0; j < k; j++)
                sums[j] += (double)row[j];
        }
        for (Py_ssize_t i = 0; i < g.nw; i++) {
            const float *row = w + (size_t)g.widx[i] * (size_t)k;
            for (int j = 0; j < k; j++)
                sums[k + j] += (double)row[j];
        }
        PyObject *t = PyTuple_New(2 * k);
        if (t != NULL) {
            for (int j = 0; j < 2 * k; j++)
                PyTuple_SET_ITEM(t, j, PyFloat_FromDouble(sums[j]));
            out = Py_BuildValue("(nnN)", g.nc, g.nw, t);
        }
    }
    PyMem_RawFree(g.cidx);
    PyBuffer_Release(&wv);
    return out;
}

/* Add one kind's share to every span's total: prefix sums of the weights and of the
 * counts by start position, then (sum in span) / sqrt(max(count in span, 1)). */
static int add_kind(const int64_t *idx, const int64_t *pos, Py_ssize_t m, Py_ssize_t n, const float *w, int k,
                    const int64_t *spans, Py_ssize_t ns, double *total) {
    if (m == 0)
        return 0;
    double *acc = (double *)PyMem_RawCalloc((size_t)(n + 1) * (size_t)(k + 1), sizeof(double));
    if (acc == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyThreadState *released = n > RELEASE_GIL_CHARS ? PyEval_SaveThread() : NULL;
    double *cnt = acc + (size_t)(n + 1) * (size_t)k; /* acc[j * (n + 1) + p]: category j, position p */
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *row = w + (size_t)idx[i] * (size_t)k;
        Py_ssize_t p = (Py_ssize_t)pos[i] + 1;
        for (int j = 0; j < k; j++)
            acc[(size_t)j * (size_t)(n + 1) + (size_t)p] += (double)row[j];
        cnt[p] += 1.0;
    }
    for (int j = 0; j <= k; j++) {
        double *a = acc + (size_t)j * (size_t)(n + 1);
        for (Py_ssize_t p = 1; p <= n; p++)
            a[p] += a[p - 1];
    }
    for (Py_ssize_t s = 0; s < ns; s++) {
        Py_ssize_t a = (Py_ssize_t)spans[2 * s], b = (Py_ssize_t)spans[2 * s + 1];
        double c = cnt[b] - cnt[a];
        double d = sqrt(c > 1.0 ? c : 1.0);
        for (int j = 0; j < k; j++) {
            const double *aj = acc + (size_t)j * (size_t)(n + 1);
            total[(size_t)j * (size_t)ns + (size_t)s] += (aj[b] - aj[a]) / d;
        }
    }
    if (released != NULL)
        PyEval_RestoreThread(released);
    PyMem_RawFree(acc);
    return 0;
}

static PyObject *py_span_sums(PyObject *self, PyObject *args) {
    PyObject *text, *wobj;
    int bits, k;
    Py_buffer wv, sv;
    Grams g;
    if (!PyArg_ParseTuple(args, "UiOiy*", &text, &bits, &wobj, &k, &sv))
        return NULL;
    if (check_bits(bits) < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    if (get_weights(wobj, bits, k, &wv) < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = NULL;
    Py_ssize_t ns = sv.len / (Py_ssize_t)(2 * sizeof(int64_t));
    const int64_t *spans = (const int64_t *)sv.buf;
    if (sv.len % (Py_ssize_t)(2 * sizeof(int64_t)) != 0) {
        PyErr_SetString(PyExc_ValueError, "spans must be pairs of int64");
        goto done;
    }
    for (Py_ssize_t s = 0; s < ns; s++) {
        if (spans[2 * s] < 0 || spans[2 * s] > spans[2 * s + 1] || spans[2 * s + 1] > n) {
            PyErr_SetString(PyExc_ValueError, "a span lies outside the text");
            goto done;
        }
    }
    if (compute(text, bits, &g) < 0)
        goto done;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(double) * k * ns);
    if (out != NULL) {
        double *total = (double *)PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < (Py_ssize_t)k * ns; i++)
            total[i] = 0.0;
        const float *w = (const float *)wv.buf;
        if (add_kind(g.cidx, g.cpos, g.nc, n, w, k, spans, ns, total) < 0 ||
            add_kind(g.widx, g.wpos, g.nw, n, w, k, spans, ns, total) < 0)
            Py_CLEAR(out);
    }
    PyMem_RawFree(g.cidx);
done:
    PyBuffer_Release(&wv);
    PyBuffer_Release(&sv);
    return out;
}

static PyMethodDef methods[] = {
    {"grams", py_grams, METH_VARARGS,
     "grams(norm, bits) -> (char_idx, char_pos, word_idx, word_pos) as bytes of native int64."},
    {"window", py_window, METH_VARARGS,
     "window(norm, bits) -> (idx, nchar) as bytes of native int64, or None (see features.first_buckets)."},
    {"window_sums", py_window_sums, METH_VARARGS,
     "window_sums(norm, bits, wt, k) -> (nchar, nword, sums) or None: one window's weight sums per category."},
    {"span_sums", py_span_sums, METH_VARARGS,
     "span_sums(norm, bits, wt, k, spans) -> bytes: k x len(spans) float64 scores before the bias."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ngrams",
                                    "The guard's hashed n-grams in C (see features.py).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ngrams(void) {
    /* P^-1 modulo 2**64 by Newton's iteration (P is odd): each step doubles the correct bits. */
    uint64_t x = P;
    for (int i = 0; i < 6; i++)
        x *= 2 - P * x;
    p_inv = x;
    q_inv[0] = 1;
    for (int t = 1; t < MAXK; t++)
        q_inv[t] = q_inv[t - 1] * p_inv;
    return PyModule_Create(&module);
}
