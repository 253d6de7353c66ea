# adde's shell code-interpreter driver, run as `bash -c` (or `sh -c`) by adde's `context`
# helper. Each cell arrives on fd 3 (a socket shared with no other process): a line holding a
# random end marker, the cell's lines, then the marker again. The cell runs in this shell (so
# its directory, variables, exports and functions persist) with fd 3 closed, and the shell
# answers `done STATUS` on fd 3. SIGINT ends the cell with status 130 (the trap returns from the cell's function).
__adde_cell() {
  eval "$__adde_code"
}
printf 'ready\n' >&3
while IFS= read -r __adde_end <&3; do
  __adde_code=
  while IFS= read -r __adde_line <&3; do
    [ "$__adde_line" = "$__adde_end" ] && break
    __adde_code="$__adde_code$__adde_line
"
  done
  # Set afresh for every cell: bash 5.2 runs no INT trap again once one returned from a
  # function while it waited for a child.
  trap - INT
  trap 'return 130' INT
  __adde_cell 3<&-
  __adde_status=$?
  printf 'done %s\n' "$__adde_status" >&3
done
