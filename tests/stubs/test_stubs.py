"""The editor stubs (stubs/bluetooth.pyi, stubs/ubluetooth.pyi) against the module itself.

Every public name the firmware's `bluetooth` module, `BLE` and `UUID` have is in the stub, and
the stub has nothing the module lacks; `ubluetooth` re-exports exactly the same names. The
constants scripts copy (`_IRQ_*`, `_FLAG_*`) must have the values the module and the Rust
core use.

Run: .cache/venv/bin/python -m pytest tests/stubs -q    (needs build/unix/micropython)
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUBS = os.path.join(ROOT, 'stubs')
FIRMWARE = os.environ.get('UBT_FIRMWARE', os.path.join(ROOT, 'build', 'unix', 'micropython'))

PROBE = r'''
import json, bluetooth, ubluetooth
def public(o):
    return sorted(n for n in dir(o) if not n.startswith('_'))
print(json.dumps({
    'module': public(bluetooth),
    'BLE': public(bluetooth.BLE),
    'UUID': public(bluetooth.UUID),
    'same': ubluetooth is bluetooth,
    'flags': {n: getattr(bluetooth, n) for n in public(bluetooth) if n.startswith('FLAG_')},
}))
'''


def probe() -> dict:
    assert os.path.exists(FIRMWARE), 'build the firmware first (make unix)'
    out = subprocess.run([FIRMWARE, '-c', PROBE], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, MICROPYBTUART='/nonexistent'))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def stub_tree(name: str) -> ast.Module:
    with open(os.path.join(STUBS, name)) as f:
        return ast.parse(f.read())


def module_names(tree: ast.Module) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names[t.id] = node
        elif isinstance(node, ast.ImportFrom):
            # In a stub only `import X as X` re-exports a name.
            for alias in node.names:
                if alias.asname == alias.name:
                    names[alias.name] = node
    return names


def public(names) -> list[str]:
    return sorted(n for n in names if not n.startswith('_'))


def class_methods(cls: ast.ClassDef) -> list[str]:
    return public({n.name for n in cls.body if isinstance(n, ast.FunctionDef)})


def constant(node: ast.AST) -> int:
    assert isinstance(node, ast.AnnAssign) and node.value is not None
    return ast.literal_eval(node.value)


def test_bluetooth_stub_matches_the_module():
    found = probe()
    names = module_names(stub_tree('bluetooth.pyi'))
    assert public(names) == found['module']
    assert class_methods(names['BLE']) == found['BLE']
    assert class_methods(names['UUID']) == found['UUID']


def test_ubluetooth_stub_reexports_the_same_names():
    found = probe()
    assert found['same']
    assert public(module_names(stub_tree('ubluetooth.pyi'))) == found['module']


def test_copied_constants_have_the_modules_values():
    found = probe()
    names = module_names(stub_tree('bluetooth.pyi'))
    for flag, value in found['flags'].items():
        assert constant(names['_' + flag]) == value, flag
    # Event numbers, against the Rust core's list (src/event.rs).
    with open(os.path.join(ROOT, 'src', 'event.rs')) as f:
        core = dict(re.findall(r'pub const (IRQ_\w+): u16 = (\d+);', f.read()))
    stub = {n[1:]: constant(v) for n, v in names.items() if n.startswith('_IRQ_')}
    assert stub == {n: int(v) for n, v in core.items()}
