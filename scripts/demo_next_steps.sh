# shellcheck shell=bash
# Sourced by scripts/demo.sh (and by tests/annotation/test_demo_next_steps.py, which runs the
# printed lines as printed): the demo's last lines, the commands of the annotation round.
#   demo_next_steps BIN ENV_FILE BUILD DATASET WORKSPACE ANNOTATIONS RELEASE
# Lines starting with '#' are explanations; every other line is a command that works as printed
# from the repository root (the key stays in ENV_FILE, mode 0600; it is never printed).
demo_next_steps() {
  local bin=$1 env_file=$2 build=$3 dataset=$4 workspace=$5 annotations=$6 release=$7
  local q_env q_bin
  q_env=$(printf '%q' "$env_file")
  q_bin=$(printf '%q' "$bin")
  echo "# progress, then decisions and agreement once annotators have submitted:"
  echo "source $q_env && $q_bin/mmloom annotate status --dataset $(printf '%q' "$dataset") --workspace $(printf '%q' "$workspace")"
  echo "source $q_env && $q_bin/mmloom annotate pull --dataset $(printf '%q' "$dataset") --workspace $(printf '%q' "$workspace") --output $(printf '%q' "$annotations")"
  echo "# (pull prints the push command of a second round for the records that need an edit;"
  echo "#  it runs as printed, on the same Argilla and image server)"
  echo "# a release that applies them (records that need an edit are left out; see needs_edit.jsonl):"
  echo "$q_bin/mmloom publish --build $(printf '%q' "$build") --output $(printf '%q' "$release") --version 0.1.0 --annotations $(printf '%q' "$annotations") --force"
}
