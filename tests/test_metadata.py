"""pyproject.toml claims what `make test-compat` proves: its lower bounds are
the `oldest` light stack's pins and its Python classifiers are the Pythons
some tier runs on (tools/light_stacks.txt, plus the full stack's)."""
import platform
import re
import tomllib

from conftest import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

PROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']


def light_stacks() -> dict:
    """``{name: (python, {package: specifier})}`` of tools/light_stacks.txt."""
    stacks = {}
    for line in (ROOT / 'tools' / 'light_stacks.txt').read_text().splitlines():
        if line.strip() and not line.startswith(('#', '@')):
            name, python, *pins = line.split()
            stacks[name] = (python, {Requirement(pin).name: str(
                Requirement(pin).specifier) for pin in pins})
    return stacks


def test_lower_bounds_are_the_oldest_stack():
    python, pins = light_stacks()['oldest']
    assert PROJECT['requires-python'] == f'>={python}'
    bounds = {Requirement(dep).name: str(Requirement(dep).specifier)
              for dep in PROJECT['dependencies']}
    assert bounds == {'torch': '>=' + pins['torch'].lstrip('='),
                      'mmengine': '>=' + pins['mmengine'].lstrip('=')}


def test_python_classifiers_are_the_tested_pythons():
    tested = {python for python, _ in light_stacks().values()}
    # The full tier runs on the interpreter running this test (.venv).
    tested.add('.'.join(platform.python_version_tuple()[:2]))
    classified = {m.group(1) for c in PROJECT['classifiers']
                  if (m := re.fullmatch(r'Programming Language :: Python :: '
                                        r'(3\.\d+)', c))}
    assert classified == tested


def test_oldest_and_newest_are_the_ends():
    stacks = light_stacks()
    for index, key in ((0, None), (1, 'torch')):
        versions = {name: Version(stack[index] if key is None
                                  else stack[index][key].lstrip('='))
                    for name, stack in stacks.items()}
        assert min(versions, key=versions.get) == 'oldest', key
        assert max(versions, key=versions.get) == 'newest', key


def test_current_stack_is_the_full_stacks_torch_and_mmengine():
    _, pins = light_stacks()['current']
    full = (ROOT / 'tools' / 'setup_env.sh').read_text() + \
        (ROOT / 'requirements-dev.txt').read_text()
    for package in ('torch', 'mmengine'):
        assert f'{package}{pins[package]}' in full.split(), package
