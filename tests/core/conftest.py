"""Keep failing hypothesis tests readable under ``filterwarnings = error``.

On a failure hypothesis imports libcst to suggest a patch; libcst's import warns
(``mypy_extensions.TypedDict is deprecated``), and the warning-as-error inside the report hook
turns a plain test failure into a pytest INTERNALERROR.  Importing it once here, with that
warning silenced, keeps failures reported normally.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import libcst.metadata.type_inference_provider  # noqa: F401
    except ImportError:  # libcst is optional for hypothesis
        pass
