# SciPy reads SCIPY_ARRAY_API once, when it is first imported; scikit-learn refuses
# array_api_dispatch=True without it. Set it before any test module imports scipy,
# as scikit-learn's own test suite does (tests/test_array_api.py needs it).
import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")
