#!/usr/bin/env bash
# Mutation testing (issue 18, item 14): how many of mutmut's mutants of the wire contract, SharedKey, OData
# ($filter/$select and paging), the client's step functions and the task script the in-process tests kill.
#
#     benchmarks/mutation.sh            # everything below (about 25-40 minutes on 2 busy cores)
#     benchmarks/mutation.sh auth       # one part: auth, odata, contract, client or task
#
# Not in CI: too slow for 2 cores. mutmut 3.8.1 (requirements-dev.txt) reads [tool.mutmut] in pyproject.toml:
# it copies the code into mutants/ (gitignored), runs the in-process unit tests listed there once to learn
# which test reaches which function, then runs each mutant against those tests only. The emulator's HTTP
# tests drive a subprocess, which mutmut's trampolines cannot see: tests/test_unit_*.py are what kills the
# emulator's mutants. The summary per module (mutants, killed, survived, score) is benchmarks/mutation_summary.py,
# each survivor and why it survives is in benchmarks/mutation_survivors.md;
# `.venv/bin/mutmut show NAME` (run here) shows one mutant's diff, `.venv/bin/mutmut results` lists survivors.
set -euo pipefail
cd "$(dirname "$0")/.."

# The client's step functions that unit tests drive with mocks (tests/test_client_unit.py, test_client_main.py);
# main() and the command-line glue are covered end to end (test_end_to_end.py), not here.
CLIENT_STEPS=(query_yes_no print_batch_exception _describe _first_line redact_secrets wrap_commands_in_shell
              upload_file_to_container upload_files_to_container get_container_sas_token _sas_signing_arguments
              get_vm_config_for_distro start_task_commands create_pool create_job _copying_task_script _this_run
              _made_by_this_run left_behind left_by_another_run add_tasks wait_for_tasks_to_complete
              _start_task_failure report_failed_tasks _tail_of_file _indent download_blobs_from_container
              expected_results _results_to_download _refused _printable _download_blob delete_containers
              _tasks_still_need_containers _holds_blobs delete_job_and_pool _made_by_this_run_or_why_unknown
              _why_not_checked _delete print_leftovers _what_the_job_does)

declare -A SCOPE=(
    [auth]='batch_emulator.auth.*'
    [odata]='batch_emulator.odata.* batch_emulator.room.x_page__mutmut_*'
    [contract]='batch_emulator.contract.*'
    [client]="$(printf 'python_tutorial_client.x_%s__mutmut_* ' "${CLIENT_STEPS[@]}")python_tutorial_client.xǁ_Progressǁ*"
    [task]='python_tutorial_task.*'
)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(auth odata contract client task)
globs=()
for part in "${parts[@]}"; do
    [ -n "${SCOPE[$part]:-}" ] || { echo "unknown part: $part (auth, odata, contract, client or task)" >&2; exit 2; }
    read -r -a more <<< "${SCOPE[$part]}"
    globs+=("${more[@]}")
done

rm -rf mutants && mkdir mutants  # a clean run: no result cached from other code or other tests
ln -s "$(readlink -f .venv)" mutants/.venv  # the client's tests of its messages look for the project's .venv
# mutmut forks one process per mutant; 2 at a time, at the lowest priority, leaves the machine usable.
nice -n 19 .venv/bin/mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "${globs[@]}" > mutants/run.log 2>&1 || {
    tail -n 40 mutants/run.log >&2; exit 1; }
.venv/bin/python benchmarks/mutation_summary.py "${globs[@]}"
