"""UI: the dashboard's layout and controls, its redraw scheduler, the redraw thread, subshell routing."""
