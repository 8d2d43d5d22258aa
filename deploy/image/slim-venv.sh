#!/bin/sh
# Remove from a virtual environment what the daemon never uses at run time (image stage `venv`):
#
#   sh slim-venv.sh /opt/venv
#
# - test suites shipped inside packages (pandas, scipy, sklearn, numpy ... `tests/`; torch's C++
#   test binaries in torch/test and torch/bin, test-only libraries in torch/lib);
# - C/C++ headers and CMake files (torch/include, torch/share): nothing is compiled here;
# - the packaging tools (pip, setuptools, wheel): the image installs nothing at run time.
# torch's own `torch.testing` module is kept (torch imports it), and so are the .pyc files: the
# root filesystem is read-only, so a missing .pyc would be recompiled on every start.
# Afterwards the script imports what the daemon imports, so a cut too deep fails the build.
set -eu
VENV=$1
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
before=$(du -sm "$VENV" | cut -f1)

find "$SITE" -depth -type d -name tests -prune -exec rm -rf {} +
rm -rf "$SITE/torch/test" "$SITE/torch/include" "$SITE/torch/share"
find "$SITE/torch/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} +
rm -f "$SITE"/torch/lib/libtorchbind_test.so "$SITE"/torch/lib/libjitbackend_test.so \
      "$SITE"/torch/lib/libbackend_with_compiler.so "$SITE"/torch/lib/libaoti_custom_ops.so

"$VENV/bin/python" -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true
rm -f "$VENV"/bin/pip "$VENV"/bin/pip3*

"$VENV/bin/python" -c "
import torch, numpy, safetensors, yaml, watchdog, prometheus_client, structlog, tqdm
import matplotlib.backends.backend_agg
import weightwatcher
x = torch.randn(64, 32)
assert torch.linalg.svdvals(x).shape == (32,)
"
echo "slim-venv.sh: $VENV ${before} MB -> $(du -sm "$VENV" | cut -f1) MB"
