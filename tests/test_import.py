"""Importing attnscope and asking for help stay cheap: no torch, no transformers, no side effects."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys, attnscope, attnscope.cli, attnscope.models, attnscope.capture
heavy = sorted(m for m in ("torch", "transformers", "tokenizers", "safetensors") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_import_loads_no_heavy_library(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "none"
    assert not any(tmp_path.iterdir()), "importing attnscope wrote files"


def test_help_loads_no_heavy_library():
    code = (
        "import sys\nfrom attnscope.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY' if 'torch' in sys.modules or 'transformers' in sys.modules else 'LIGHT')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "analyze" in result.stdout and "models" in result.stdout
    assert result.stdout.strip().endswith("LIGHT")


def test_public_api_resolves_lazily():
    import attnscope

    assert callable(attnscope.load_model) and callable(attnscope.capture)
    assert attnscope.Trace.__name__ == "Trace"


def test_capture_is_callable_however_it_is_imported():
    import attnscope
    import attnscope.capture as capture_package
    from attnscope.capture import capture as capture_function
    from tests.conftest import tiny

    model = tiny("gpt2")
    via_package = attnscope.capture(model, "same")
    assert capture_package is attnscope.capture
    assert via_package.token_ids == capture_function(model, "same").token_ids
