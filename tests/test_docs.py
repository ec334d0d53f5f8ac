"""Every code block of README.md and docs/*.md is run or loaded, so none rots.

Convention for writers of README.md and docs/*.md
=================================================

Only three fence languages are allowed: ```python, ```bash and ```text
(``text`` is for output you show, e.g. a log excerpt or a table; it is not
run). Any other language (```sh, ```console, ```py, a bare ```) fails
the test, so a command cannot slip past untested. MyST directives
(```{toctree}, ```{include}) are not code and are left alone.

What a block gets is chosen by an HTML comment on the line right before its
fence (invisible on GitHub and in the built site), or by the default:

``<!-- test: config -->``  (the default for ```python)
    The block is a config snippet: it is written to a temporary ``.py`` file
    and loaded with ``mmengine.Config.fromfile`` (so it must be a valid
    config file on its own: assignments, no ``...`` placeholders). A
    top-level ``paramwise_cfg``, and ``optim_wrapper.paramwise_cfg`` where
    the constructor is ours (it must be there then, merged from ``_base_``
    or not) or it sets ``decay_rate``, are parsed with
    ``layerdecay_plugin.parse_paramwise_cfg``; every
    ``LayerDecayLrHook`` in ``custom_hooks`` is built. ``_base_`` paths
    are resolved from the repository root (``configs/...``) or as
    ``mmdet::...``.
``<!-- test: exec -->``  (```python)
    The block is code: it is exec'd in a fresh namespace, cwd the
    repository root; end it with ``assert``s that show it did what the
    page says. Backbone rules it registers (``register_backbone_rules``)
    are unregistered afterwards.
``<!-- test: check -->``  (the default for ```bash)
    Each command (``\\`` continuations joined, ``#`` comments and leading
    ``VAR=value`` settings dropped) is checked without running it:
    ``make T`` needs a target ``T`` in the Makefile; ``bash PATH`` and
    ``python PATH ...`` need the script; ``python -m layerdecay_plugin``
    / ``layerdecay-inspect`` arguments are parsed by the CLI's own parser
    (which also checks that the config file exists); ``tools/train.py``
    and ``tools/gpu_check.py`` arguments by their parsers; ``torchrun`` /
    ``python -m torch.distributed.run`` by torch's parser, then the script
    as above; ``python -m pytest`` needs the test files it names; ``pip
    install PATH`` needs ``PATH`` to be a project; ``bash``, ``source`` and
    ``cd`` need their path. Any other command fails the test (teach this file
    about it first).
``<!-- test: run -->``  (```bash)
    Checked as above, then the block is run by ``bash -euo pipefail`` with
    ``.venv/bin`` first on ``PATH`` and must exit 0 (a block of inspect CLI
    commands only is run in the test's process, by the CLI's ``main``). It
    runs in a temporary directory that mirrors the repository's top level
    with symlinks (but with its own empty ``data/`` and ``work_dirs/``), so
    the files it writes stay out of the clone. Only for cheap commands
    (seconds each: this whole file should stay under ~30 s), e.g. the
    inspect CLI on a config.
``<!-- test: skip REASON -->``
    Not tested; REASON is required and should say why (e.g. "needs 8
    GPUs"). Use sparingly: prefer ``check``.

Placeholders in commands: ``CONFIG`` stands for any config and is checked
with the demo config
(``configs/mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py``);
``WORK_DIR`` for a work dir (any path); a ``run`` block cannot use them.
Paths in commands are relative to the repository root, like the Makefile's.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))
DEMO_CONFIG = ('configs/'
               'mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py')
PLACEHOLDERS = {'CONFIG': DEMO_CONFIG, 'WORK_DIR': 'work_dirs/doc-test'}
# What commands write: a `run` block gets its own, empty, in its tmp_path.
OUTPUTS = ('data', 'work_dirs')
KINDS = {
    'python': ('config', 'exec', 'skip'),
    'bash': ('check', 'run', 'skip'),
    'text': ('text', ),
}
DEFAULT_KIND = {'python': 'config', 'bash': 'check', 'text': 'text'}
FENCE = re.compile(r'^(\s*)(`{3,}|~{3,})\s*([^`\s]*)')
MARKER = re.compile(r'^\s*<!--\s*test:\s*(\w+)\s*(.*?)\s*-->\s*$')


class Block(NamedTuple):
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    kind: str
    reason: str  # skip's reason
    code: str

    @property
    def id(self) -> str:
        return f'{self.page}:{self.line}:{self.language}:{self.kind}'


def read_blocks(path: Path) -> List[Block]:
    """The fenced code blocks of a Markdown page, with their test kind."""
    lines = path.read_text(encoding='utf-8').splitlines()
    page = str(path.relative_to(ROOT))
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, language = match.groups()
        end = index + 1
        while end < len(lines) and not (
                lines[end].strip().startswith(fence[0] * len(fence))
                and lines[end].strip().strip(fence[0]) == ''):
            end += 1
        body = [line[len(indent):] if line.startswith(indent) else line
                for line in lines[index + 1:end]]
        marker = MARKER.match(lines[index - 1]) if index else None
        if not language.startswith('{'):  # MyST directives are not code
            kind = marker.group(1) if marker else DEFAULT_KIND.get(language,
                                                                   '')
            reason = marker.group(2) if marker else ''
            blocks.append(Block(page, index + 1, language, kind, reason,
                                '\n'.join(body) + '\n'))
        index = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def test_pages_found():
    # The glob above must see the pages: a moved docs/ must not silently
    # turn this file into zero tests.
    assert (ROOT / 'docs' / 'index.md').is_file()
    assert len(BLOCKS) > 10, [p.name for p in PAGES]


@pytest.mark.parametrize('block', BLOCKS, ids=lambda b: b.id)
def test_block(block: Block, tmp_path: Path):
    where = f'{block.page}:{block.line}'
    assert block.language in KINDS, (
        f'{where}: fence language {block.language!r}; use python, bash or '
        'text (see tests/test_docs.py)')
    assert block.kind in KINDS[block.language], (
        f'{where}: <!-- test: {block.kind} --> on a {block.language} block; '
        f'allowed: {KINDS[block.language]}')
    if block.kind == 'skip':
        assert block.reason, f'{where}: <!-- test: skip --> needs a reason'
        pytest.skip(f'{where}: {block.reason}')
    CHECKS[block.kind](block, tmp_path)


# -- python blocks -----------------------------------------------------------


def check_config(block: Block, tmp_path: Path) -> None:
    """Load a config snippet with mmengine and parse its paramwise_cfgs."""
    from mmengine.config import Config
    from mmengine.registry import HOOKS

    import layerdecay_plugin
    # `_base_ = ['configs/...']` resolves from the repository root.
    (tmp_path / 'configs').symlink_to(ROOT / 'configs')
    path = tmp_path / 'snippet.py'
    path.write_text(block.code)
    cfg = Config.fromfile(str(path))
    paramwise = []
    if 'paramwise_cfg' in cfg:
        paramwise.append(cfg.paramwise_cfg)
    optim_wrapper = cfg.get('optim_wrapper') or {}
    inner = optim_wrapper.get('paramwise_cfg')
    # Ours needs a paramwise_cfg (None is an error); another constructor's
    # is checked only where it sets layer decay.
    if optim_wrapper.get('constructor') in (
            'LayerDecayPluginConstructor',
            'LayerDecayOptimWrapperConstructor') or (
                inner is not None and 'decay_rate' in inner):
        paramwise.append(inner)
    for one in paramwise:
        layerdecay_plugin.parse_paramwise_cfg(one)
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') == 'LayerDecayLrHook':
            assert isinstance(HOOKS.build(dict(hook)),
                              layerdecay_plugin.LayerDecayLrHook)


def check_exec(block: Block, tmp_path: Path) -> None:
    """Run a code block in a fresh namespace from the repository root."""
    from layerdecay_plugin.backbones.classes import BACKBONES
    registered = dict(BACKBONES)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(block.code, f'{block.page}:{block.line}', 'exec'),
             {'__name__': '__doc_block__'})
    finally:
        os.chdir(cwd)
        # A page's example backbone must not stay known to later tests.
        BACKBONES.clear()
        BACKBONES.update(registered)


# -- bash blocks -------------------------------------------------------------


def commands(code: str) -> List[List[str]]:
    """The commands of a bash block as argument lists.

    Continuation lines are joined, comments and leading ``VAR=value``
    settings dropped, ``&&``, ``||``, ``|`` and ``;`` split commands, and
    the placeholders (``CONFIG``, ``WORK_DIR``) replaced.
    """
    result = []
    for line in code.replace('\\\n', ' ').splitlines():
        words: List[str] = []
        lexer = shlex.shlex(line, posix=True, punctuation_chars=';&|')
        lexer.whitespace_split = True
        for word in list(lexer) + [';']:
            if word in ('&&', ';', '||', '|'):
                while words and re.match(r'^[A-Za-z_]\w*=', words[0]):
                    words.pop(0)
                if words:
                    result.append([PLACEHOLDERS.get(w, w) for w in words])
                words = []
            else:
                words.append(word)
    return result


def make_targets() -> List[str]:
    text = (ROOT / 'Makefile').read_text()
    return re.findall(r'^([A-Za-z0-9_.-]+)\s*:(?!=)', text, re.M)


def parse_with(parse_args: Callable[[], object], argv: List[str]) -> None:
    """Run an argparse-based ``parse_args()`` that reads ``sys.argv``."""
    saved = sys.argv
    sys.argv = argv
    try:
        parse_args()
    except SystemExit as exit:  # argparse's way to report bad arguments
        raise AssertionError(f'{argv} rejected by its parser: {exit}')
    finally:
        sys.argv = saved


def check_inspect(args: List[str]) -> None:
    from layerdecay_plugin import cli
    parse_with(lambda: cli.parse_args(), ['layerdecay-inspect'] + args)


def check_train(args: List[str]) -> None:
    sys.path.insert(0, str(ROOT / 'tools'))
    try:
        import train
    finally:
        sys.path.remove(str(ROOT / 'tools'))
    parse_with(train.parse_args, ['tools/train.py'] + args)


def check_gpu_check(args: List[str]) -> None:
    sys.path.insert(0, str(ROOT / 'tools'))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / 'tools'))
    parse_with(lambda: gpu_check.parse_args(), ['tools/gpu_check.py'] + args)


def check_script(args: List[str]) -> None:
    script = args[0]
    assert (ROOT / script).is_file(), f'no script {script}'
    if Path(script) == Path('tools/train.py'):
        check_train(args[1:])
    if Path(script) == Path('tools/gpu_check.py'):
        check_gpu_check(args[1:])


def check_torchrun(args: List[str]) -> None:
    from torch.distributed.run import get_args_parser
    parsed = get_args_parser().parse_args(args)
    check_script([parsed.training_script] + parsed.training_script_args)


def check_pytest(args: List[str]) -> None:
    for arg in args:
        path = arg.split('::')[0]
        if not arg.startswith('-') and ('/' in path or path.endswith('.py')):
            assert (ROOT / path).exists(), f'pytest {arg}: no {path}'


PYTHON_MODULES: Dict[str, Callable[[List[str]], None]] = {
    'layerdecay_plugin': check_inspect,
    'torch.distributed.run': check_torchrun,
    'pytest': check_pytest,
}


def check_python(args: List[str]) -> None:
    if args[0] == '-m':
        assert args[1] in PYTHON_MODULES, (
            f'python -m {args[1]}: teach tests/test_docs.py to check it')
        PYTHON_MODULES[args[1]](args[2:])
    else:
        check_script(args)


def check_pip(args: List[str]) -> None:
    assert args[0] == 'install', args
    targets = [a for a in args[1:] if not a.startswith('-')]
    for target in targets:
        assert (ROOT / target / 'pyproject.toml').is_file(), (
            f'pip install {target}: not a project of this repository')


def check_path(args: List[str]) -> None:
    assert (ROOT / args[0]).exists(), f'no {args[0]}'


def check_make(args: List[str]) -> None:
    targets = make_targets()
    for target in args:
        if re.match(r'^[A-Za-z_]\w*=', target):
            continue  # a variable, e.g. PYTEST_ARGS='-k docs'
        assert not target.startswith('-'), f'make {target}: not checked'
        assert target in targets, f'make {target}: no such Makefile target'


PROGRAMS: Dict[str, Callable[[List[str]], None]] = {
    'make': check_make,
    'bash': check_path,
    'source': check_path,
    'cd': check_path,
    'python': check_python,
    'layerdecay-inspect': check_inspect,
    'torchrun': check_torchrun,
    'pip': check_pip,
}


def check_command(words: List[str]) -> None:
    program = words[0]
    if program.startswith('.venv/bin/'):
        program = program[len('.venv/bin/'):]
    if program == 'python3':
        program = 'python'
    assert program in PROGRAMS, (
        f'{" ".join(words)}: {program!r} is no command tests/test_docs.py '
        f'knows how to check ({", ".join(PROGRAMS)})')
    PROGRAMS[program](words[1:])


def check_bash(block: Block, tmp_path: Path) -> None:
    found = commands(block.code)
    assert found, f'{block.page}:{block.line}: empty bash block'
    for words in found:
        check_command(words)


def inspect_args(words: List[str]) -> Optional[List[str]]:
    """The arguments of an inspect CLI command, None for other commands."""
    program = words[0].replace('.venv/bin/', '', 1)
    if program == 'layerdecay-inspect':
        return words[1:]
    if program in ('python', 'python3') and words[1:3] == [
            '-m', 'layerdecay_plugin']:
        return words[3:]
    return None


def run_bash(block: Block, tmp_path: Path) -> None:
    """Check, then run the block in a mirror of the repository's top level
    (symlinks), so that files the commands write land in ``tmp_path``.

    A block of inspect CLI commands only runs them in this process
    (``layerdecay_plugin.cli.main``, what ``python -m layerdecay_plugin``
    calls): a new process would spend most of its time importing mmdet
    again. Any other block runs in ``bash``.
    """
    check_bash(block, tmp_path)
    placeholder = re.search(r'\b(%s)\b' % '|'.join(PLACEHOLDERS), block.code)
    assert not placeholder, (
        f'{block.page}:{block.line}: a run block runs as written, so it '
        f'cannot use the placeholder {placeholder.group(0)}')
    for entry in ROOT.iterdir():
        if entry.name not in OUTPUTS:
            (tmp_path / entry.name).symlink_to(entry)
    inspect = [inspect_args(words) for words in commands(block.code)]
    if all(args is not None for args in inspect):
        from layerdecay_plugin import cli
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            for args in inspect:
                assert cli.main(args) == 0, (
                    f'{block.page}:{block.line}: {args} did not exit 0')
        finally:
            os.chdir(cwd)
        return
    path = f'{ROOT / ".venv" / "bin"}{os.pathsep}{os.environ["PATH"]}'
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1', PATH=path)
    done = subprocess.run(['bash', '-euo', 'pipefail', '-c', block.code],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, (
        f'{block.page}:{block.line} exited {done.returncode}:\n'
        f'{done.stdout[-3000:]}\n{done.stderr[-3000:]}')


CHECKS: Dict[str, Callable[[Block, Path], None]] = {
    'config': check_config,
    'exec': check_exec,
    'check': check_bash,
    'run': run_bash,
    'text': lambda block, tmp_path: None,
}


@pytest.mark.parametrize('code, expected', [
    ('make demo   # comment\n', [['make', 'demo']]),
    ('A=1 B=2 python -m layerdecay_plugin CONFIG \\\n    --json g.json\n',
     [['python', '-m', 'layerdecay_plugin', DEMO_CONFIG, '--json',
       'g.json']]),
    ('cd x && make y; make z\n', [['cd', 'x'], ['make', 'y'], ['make', 'z']]),
    ("make test PYTEST_ARGS='-k docs'  # a part\n",
     [['make', 'test', 'PYTEST_ARGS=-k docs']]),
])
def test_commands(code: str, expected: List[List[str]]):
    assert commands(code) == expected


@pytest.mark.parametrize('words', [
    ['make', 'no-such-target'],
    ['python', 'tools/no_such_script.py'],
    ['python', '-m', 'layerdecay_plugin', 'configs/no_such_config.py'],
    ['python', 'tools/train.py', DEMO_CONFIG, '--no-such-option'],
    ['torchrun', '--nproc_per_node=2', 'tools/no_such_script.py'],
    ['rm', '-rf', 'work_dirs'],
    ['python', '-m', 'pytest', 'tests/test_no_such_file.py'],
])
def test_bad_commands_fail(words: List[str]):
    # The checks must be able to fail, or the page tests prove nothing.
    with pytest.raises(AssertionError):
        check_command(words)


def test_bad_config_fails(tmp_path: Path):
    block = Block('x.md', 1, 'python', 'config', '',
                  'paramwise_cfg = dict(decay_rate=0.9, num_layer=6)\n')
    from layerdecay_plugin import LayerDecayConfigError
    with pytest.raises(LayerDecayConfigError, match='num_layers'):
        check_config(block, tmp_path)


def test_bad_code_fails(tmp_path: Path):
    block = Block('x.md', 1, 'python', 'exec', '', 'assert 1 == 2\n')
    with pytest.raises(AssertionError):
        check_exec(block, tmp_path)
