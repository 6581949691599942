"""import_optional: the module when installed, else an ImportError saying what needs it and how to install it."""

import pytest

from maskface.utils.optional import import_optional


def test_import_optional():
    assert import_optional("json", "x", "y").dumps([1]) == "[1]"
    with pytest.raises(ImportError, match=r"the web app needs no_such_pkg_xyz, which is not installed .*install it with: "
                                          r"pip install no-such"):
        import_optional("no_such_pkg_xyz", "the web app", "pip install no-such")
