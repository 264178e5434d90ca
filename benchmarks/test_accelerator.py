"""benchmarks/accelerator.py runs end to end (``--tiny`` on any CPU) and prints every figure it
promises: matmul ceilings, train img/s with MFU, loop vs bare step, the artifact comparison."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_tiny_accelerator_check(tmp_path):
  out = tmp_path / 'report.json'
  proc = subprocess.run([sys.executable, os.path.join(HERE, 'accelerator.py'), '--tiny',
                         '--batch_sizes=2', '--precisions=fp32,bf16', f'--json_out={out}'],
                        capture_output=True, text=True, check=False, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = proc.stdout
  assert 'matmul ceiling' in text and 'loop vs bare step' in text, text
  assert 'exported artifact' in text and 'largest difference' in text, text
  report = json.loads(out.read_text())
  assert [r['precision'] for r in report['train']] == ['fp32', 'bf16']
  assert all(r['img_s'] > 0 and r['flops_per_step'] > 0 for r in report['train'])
  assert 0 < report['loop']['loop_fraction']
  # On a CPU the artifact runs on the CPU alone: the same function, the same numbers.
  assert report['artifact']['ran_on'] == ['cpu'] and report['artifact']['max_abs_diff'] == 0
