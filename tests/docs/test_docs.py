"""The docs stay true to the repository.

- docs/api.md has a heading for every public name the stub declares (module, BLE, UUID) and
  mentions every constant the stub lists for scripts to copy;
- every relative link in README.md and docs/*.md points at a file that exists, and every
  `#anchor` at a heading that exists;
- every repository path and `make` target the docs name in backticks exists.

Run: .cache/venv/bin/python -m pytest tests/docs -q
"""

from __future__ import annotations

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = [os.path.join('docs', f) for f in sorted(os.listdir(os.path.join(ROOT, 'docs'))) if f.endswith('.md')]
PAGES = ['README.md'] + DOCS + ['ports/stm32/README.md']


def read(rel: str) -> str:
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def stub_names() -> tuple[list[str], list[str]]:
    """(public names as they'd be written in a heading, private constants scripts copy)."""
    tree = ast.parse(read('stubs/bluetooth.pyi'))
    public, constants = [], []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith('_'):
            public.append(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (not item.name.startswith('_') or item.name.startswith('__')):
                    public.append(f'{node.name}.{item.name}')
        elif isinstance(node, (ast.AnnAssign, ast.Assign)):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name):
                if target.id.startswith('FLAG_'):
                    public.append(target.id)
                elif re.match(r'_[A-Z][A-Z0-9_]+$', target.id):
                    constants.append(target.id)
    return public, constants


def headings(text: str) -> list[str]:
    return [line.lstrip('#').strip() for line in text.splitlines() if line.startswith('#')]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-')


def test_api_reference_has_a_heading_for_every_public_name():
    public, _ = stub_names()
    assert len(public) > 40, public
    heads = headings(read('docs/api.md'))
    missing = []
    for name in public:
        cls, _, member = name.rpartition('.')
        if member == '__init__':
            # The constructor is written as a call: `BLE()` / `UUID(value, /)`.
            found = any(f'`{cls}(' in h for h in heads)
        else:
            found = any(re.search(r'(^|[`.\s(,])' + re.escape(member) + r'\b', h) for h in heads)
        if not found:
            missing.append(name)
    assert not missing, f'no heading in docs/api.md for {missing}'


def test_api_reference_mentions_every_copied_constant():
    _, constants = stub_names()
    assert len(constants) > 30, constants
    text = read('docs/api.md')
    missing = [c for c in constants if not re.search(r'\b' + re.escape(c) + r'\b', text)]
    assert not missing, f'docs/api.md never mentions {missing}'


LINK = re.compile(r'\]\(([^)\s]+)\)')


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_resolve(page):
    text = read(page)
    base = os.path.dirname(os.path.join(ROOT, page))
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):
            continue  # http(s), mailto: not checked offline
        path, _, frag = target.partition('#')
        file = os.path.normpath(os.path.join(base, path)) if path else os.path.join(ROOT, page)
        if not os.path.exists(file):
            broken.append(target)
        elif frag and file.endswith('.md'):
            with open(file) as f:
                if frag not in {anchor(h) for h in headings(f.read())}:
                    broken.append(target)
    assert not broken, f'{page}: broken links {broken}'


# Backticked paths into the repository: `tools/aioble.sh`, `tests/multi/x.py`, `examples/...`.
PATH = re.compile(r'`((?:docs|tools|tests|examples|stubs|src|ports|micropython_glue|nimble|bench)/[\w./-]*)`')
MAKE = re.compile(r'\bmake ([a-z][\w-]*)')
CODE = re.compile(r'```.*?```|`[^`\n]+`', re.S)


@pytest.mark.parametrize('page', PAGES)
def test_named_paths_and_make_targets_exist(page):
    text = read(page)
    missing = [p for p in PATH.findall(text) if not os.path.exists(os.path.join(ROOT, p.rstrip('/')))]
    targets = set(re.findall(r'^([a-z][\w-]*):', read('Makefile'), re.M))
    code = '\n'.join(CODE.findall(text))
    missing += [f'make {t}' for t in MAKE.findall(code) if t not in targets]
    assert not missing, f'{page} names what does not exist: {missing}'
