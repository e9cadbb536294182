#!/usr/bin/env bash
# Set up depth_sr_ros in a virtual environment at .venv in this checkout (no ROS install
# needed: rclpy and the messages come from PyPI). Safe to run again; it only adds what is
# missing.
#
#   bash scripts/setup_venv.sh          # runtime: torch (CPU build here), OpenCV, rclpy, ...
#   bash scripts/setup_venv.sh --test   # and the test tools (pytest, ament linters, colcon)
#   bash scripts/setup_venv.sh --jazzy  # .venv-jazzy: the same with ROS 2 Jazzy's rclpy and
#                                       # messages (requirements-jazzy.txt), and pytest
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
venv=.venv
case "${1:-}" in
  --test) with_tests=1 ;;
  --jazzy) venv=.venv-jazzy ;;
  '') ;;
  *) echo "usage: $0 [--test | --jazzy]" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    # Debian and Ubuntu ship venv separately from python3.
    venv_pkg="python3-venv"
    if command -v apt-get >/dev/null; then
      echo "setup_venv: installing $venv_pkg" >&2
      if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq "$venv_pkg"
      else sudo apt-get update -qq && sudo apt-get install -y -qq "$venv_pkg"; fi
      "$python" -m venv "$venv"
    else
      echo "setup_venv: '$python -m venv' failed; install Python's venv module" >&2
      exit 1
    fi
  fi
fi

pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if [ "$venv" = .venv-jazzy ]; then
  # requirements.txt without its Kilted ROS packages, then Jazzy's; pytest for the ROS tests.
  grep -v '^ros-' requirements.txt > "$venv/requirements-base.txt"
  "${pip[@]}" -r "$venv/requirements-base.txt" -r requirements-jazzy.txt pytest pyyaml
else
  "${pip[@]}" -r requirements.txt
fi
if [ "$with_tests" -eq 1 ]; then
  "${pip[@]}" -r requirements-test.txt
fi
# torch's install may raise setuptools to 80+, which colcon cannot use.
"${pip[@]}" 'setuptools<80'
# The package itself, editable, without touching the dependencies installed above.
"${pip[@]}" --no-deps --no-build-isolation -e .
echo "setup_venv: ready in $venv"
