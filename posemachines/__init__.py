"""posemachines: Convolutional Pose Machines and Recurrent Human Pose Estimation in JAX/Flax."""

import os as _os

__version__ = '0.1.0'

# XLA's default CPU path for convolution weight gradients (YNNPACK convolution fusions) is several
# times slower than the classic path; `python -m posemachines.benchmark --compare_cpu_flags`
# measures the difference. The flag only affects the CPU backend and must be set before JAX
# starts, so it is added here unless the user's XLA_FLAGS already choose a YNN fusion setting,
# or POSEMACHINES_CPU_FLAGS=0.
CPU_XLA_FLAG = '--xla_cpu_experimental_ynn_fusion_type='
CPU_XLA_DEFAULT = '-individual_convolution'

# Environment defaults that keep TensorFlow's start-up banners off every command's stderr. They
# must be set before TensorFlow is imported, so they are set here; a value the user set wins.
#   TF_CPP_MIN_LOG_LEVEL=1  hides TensorFlow's C++ INFO lines (the CPU-feature banner); warnings
#                           and errors still show.
#   TF_ENABLE_ONEDNN_OPTS=0 TensorFlow runs only the input pipeline here (JPEG decoding, the
#                           crop's warp, batching) and the exported SavedModel; oneDNN's custom
#                           operations only replace TensorFlow's own convolutions and matrix
#                           products, and with them on TensorFlow prints a banner (twice) that
#                           no log level hides. Set TF_ENABLE_ONEDNN_OPTS=1 to use them.
ENVIRONMENT_DEFAULTS = {'TF_CPP_MIN_LOG_LEVEL': '1', 'TF_ENABLE_ONEDNN_OPTS': '0'}


def _apply_cpu_flags():
  flags = _os.environ.get('XLA_FLAGS', '')
  if _os.environ.get('POSEMACHINES_CPU_FLAGS', '1') == '0' or CPU_XLA_FLAG in flags:
    return
  _os.environ['XLA_FLAGS'] = f'{flags} {CPU_XLA_FLAG}{CPU_XLA_DEFAULT}'.strip()


def _apply_environment_defaults():
  for name, value in ENVIRONMENT_DEFAULTS.items():
    _os.environ.setdefault(name, value)


_apply_cpu_flags()
_apply_environment_defaults()
