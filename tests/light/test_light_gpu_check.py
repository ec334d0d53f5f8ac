"""tools/gpu_check.py (issue #22) in its CPU mode: the same code paths as on
a GPU (build_optim_wrapper with layer decay on a timm ViT and ConvNeXt,
training steps on one device and under FSDP in 2 torchrun processes over
gloo, the AdamW step benchmark), with tiny models and few steps.

timm is not part of the light stacks (tools/light_stacks.txt): there the
test is skipped; the dev venv runs it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
STATS = ('n', 'median_ms', 'q1_ms', 'q3_ms', 'iqr_ms', 'min_ms', 'max_ms')


def gpu_check():
    sys.path.insert(0, str(ROOT / 'tools'))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / 'tools'))
    return gpu_check


def test_gpu_check_cpu(tmp_path):
    pytest.importorskip('timm')
    path = [str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join(path))
    done = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'gpu_check.py'), '--device',
         'cpu', '--skip-light', '--steps', '5', '--warmup', '2',
         '--train-steps', '2', '--out', str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    output = (done.stdout + done.stderr)[-6000:]
    report_path = tmp_path / 'gpu_check.json'
    assert report_path.is_file(), output
    report = json.loads(report_path.read_text())

    assert set(report['models']) == {'vit', 'convnext'}
    for key, entry in report['models'].items():
        assert entry['groups'] > 2, entry
        single, fsdp = entry['single'], entry['fsdp']
        assert single.get('groups_equal'), (key, single.get('error'),
                                            single.get('group_diff'))
        assert single['finite'] and single['params_changed'], single
        assert single['groups_equal_after_training'], single
        assert fsdp.get('groups_equal'), (key, fsdp.get('error'),
                                          fsdp.get('group_diff'),
                                          fsdp.get('output_tail'))
        assert fsdp['nproc'] == 2 and fsdp['backend'] == 'gloo', fsdp
        assert fsdp['same_groups_on_all_ranks'], fsdp
        assert fsdp['all_ranks_finite'] and fsdp['all_ranks_changed'], fsdp
        assert len(fsdp['losses']) == 2, fsdp

    fused_works = gpu_check().fused_support('cpu') is None
    assert set(report['benchmark']) == {'vit', 'convnext'}
    for key, entry in report['benchmark'].items():
        assert entry['tensors'] > 50 and entry['steps'] == 5, entry
        impls = ['foreach'] + (['fused'] if fused_works else [])
        if not fused_works:
            assert entry['fused']['skipped'], entry
        for impl in impls:
            result = entry[impl]
            assert result['groups'] > 2, result
            for which in ('layer_decay', 'one_group'):
                assert set(STATS) <= set(result[which]), result
                assert result[which]['n'] == 5
                assert 0 < result[which]['min_ms'] <= \
                    result[which]['median_ms'] <= result[which]['max_ms']
            ratio = (result['layer_decay']['median_ms'] /
                     result['one_group']['median_ms'])
            assert result['ratio'] == pytest.approx(ratio)
            assert result['over_limit'] == (ratio > 1.05)
    assert report['light'] == {'skipped': '--skip-light'}
    assert report['ok'] and done.returncode == 0, output

    text = (tmp_path / 'gpu_check.md').read_text()
    assert 'ratio of medians' in text and 'All checks passed.' in text
    over = any(e[i].get('over_limit') for e in report['benchmark'].values()
               for i in ('foreach', 'fused'))
    assert ('ratio > 1.05: see issue #22 item 2' in text) == over


def test_report_flags_a_ratio_over_the_limit():
    module = gpu_check()

    def pair(ratio):
        one = dict(n=50, median_ms=10., q1_ms=9., q3_ms=11., iqr_ms=2.,
                   min_ms=8., max_ms=12.)
        return dict(layer_decay=dict(one, median_ms=10. * ratio),
                    one_group=one, groups=28, ratio=ratio,
                    over_limit=ratio > module.RATIO_LIMIT)

    report = dict(
        started='now', device='cuda', elapsed_s=1.,
        environment=dict(device_name='GPU', devices=1, torch='t',
                         mmengine='m', timm='t'),
        benchmark=dict(vit=dict(arch='vit_base_patch16_224', tensors=152,
                                steps=50, foreach=pair(1.0),
                                fused=dict(skipped='no'))))
    assert module.RATIO_LINE not in module.markdown(report)
    report['benchmark']['vit']['foreach'] = pair(1.2)
    text = module.markdown(report)
    assert 'ratio > 1.05: see issue #22 item 2' in text
    assert '1.200' in text
