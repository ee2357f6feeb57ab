"""Build hook for the one C extension: the guard's n-gram hashing (``clearance.guard._ngrams``).

Everything else about the package is declared in ``pyproject.toml``.  The
extension is optional: if it cannot be compiled, the install goes on and the
guard uses its numpy implementation, which gives the same scores more slowly
(the gateway's "gateway ready" log line says which is in use, and warns without it).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "clearance.guard._ngrams",
            sources=["src/clearance/guard/_ngrams.c"],
            extra_compile_args=["-O2", "-std=c11"],
            libraries=["m"],
            optional=True,
        )
    ]
)
