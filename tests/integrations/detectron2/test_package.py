"""maskface/integrations/detectron2/__init__.py: Detectron2 imported lazily, only by this package,
and a missing Detectron2 named with its installation guide."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "maskface"


def test_only_the_integration_imports_detectron2():
    pattern = re.compile(r"^\s*(import detectron2|from detectron2)", re.M)
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))
                 and "integrations/detectron2" not in p.as_posix()]
    assert offenders == []


def test_importing_maskface_and_the_integration_does_not_import_detectron2():
    code = ("import sys, maskface, maskface.integrations.detectron2 as d2, maskface.inference.predictor, "
            "maskface.integrations.detectron2.convert; assert 'detectron2' not in sys.modules, 'imported'; "
            "print(d2.INSTALL_GUIDE)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "detectron2.readthedocs.io" in out.stdout


def test_missing_detectron2_names_the_install_guide(monkeypatch):
    from maskface.integrations import detectron2 as integration

    monkeypatch.setitem(sys.modules, "detectron2", None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match=re.escape(integration.INSTALL_GUIDE)):
        integration.require_detectron2()
    for mod in [m for m in sys.modules if m.startswith("maskface.integrations.detectron2.")]:
        monkeypatch.delitem(sys.modules, mod)
    with pytest.raises(ImportError, match="not installed"):
        integration.register_face_datasets  # noqa: B018  (lazy attribute -> submodule import)
