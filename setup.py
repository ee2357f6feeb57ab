"""Build hook for the one C extension: the guard's n-gram hashing (``clearance.guard._ngrams``).

Everything else about the package is declared in ``pyproject.toml``.  The
extension is optional: if it cannot be compiled, the install goes on and the
guard uses its numpy implementation, which gives the same scores more slowly
(``clearance guard score --info`` and the ``/readyz`` details say which is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "clearance.guard._ngrams",
            sources=["src/clearance/guard/_ngrams.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        )
    ]
)
