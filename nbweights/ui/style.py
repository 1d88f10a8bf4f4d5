"""The dashboard's CSS: one <style> block, shown once at the top of the dashboard.

Colours come from JupyterLab's theme variables (with light-theme fallbacks), so the light and
the dark theme both read. bqplot's fills are inline styles set from the kernel, which does not know
the theme: on a dark theme the percentile bands take a lighter blue (at their faint opacities the
line colour's bands differed from the background by a contrast ratio of 1.17).
"""

STYLE = """<style>
.nbw-pixelated { image-rendering: pixelated; }
.nbw-title { font-size: 12px; font-weight: 600; margin: 2px 0; }
.nbw-note, .nbw-picture-notes { color: var(--jp-ui-font-color2, #777); font-size: 11px; }
.nbw-error { color: var(--jp-error-color1, #d32f2f); font-size: 12px; }
.nbw-status { font-size: 12px; font-variant-numeric: tabular-nums; }
.nbw-colorbar { display: flex; align-items: center; gap: 6px; font-size: 11px; }
.nbw-colorbar-ramp { display: inline-block; width: 160px; height: 10px; }
.nbw-class-label { font-size: 11px; text-align: center; }
.nbw-layer-table { max-height: 340px; overflow: auto; }
.nbw-table { border-collapse: collapse; font-size: 11px; font-variant-numeric: tabular-nums; }
.nbw-table th, .nbw-table td { padding: 1px 6px; text-align: right;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.nbw-table td:first-child, .nbw-table th:first-child { text-align: left; font-family: monospace; }
.nbw-table tr.nbw-unhealthy td { background: rgba(230, 60, 60, 0.18); }
.nbw-table td.nbw-earlier { color: var(--jp-ui-font-color2, #777); }
.nbw-health-table td, .nbw-health-table th { text-align: left; overflow: hidden; overflow-wrap: anywhere;
  white-space: normal; vertical-align: middle; }
.nbw-health-table tr.nbw-signal td { background: rgba(230, 60, 60, 0.10); }
.nbw-health { max-height: 340px; overflow: auto; }
.nbw-health .widget-html, .nbw-health .widget-html-content { height: auto; line-height: normal; margin: 0; }
.nbw-signal-row { align-items: center; margin: 0; }
.nbw-dashboard .nbw-table, .nbw-dashboard .nbw-title { color: var(--jp-ui-font-color1, #222); }
.nbw-dashboard .bqplot { --bq-content-font-color: var(--jp-ui-font-color1, #222);
  --bq-axis-tick-text-fill: var(--jp-ui-font-color1, #222); --bq-axislabel-fill: var(--jp-ui-font-color1, #222);
  --bq-mainheading-fill: var(--jp-ui-font-color1, #222); }
.nbw-health-kind .nbw-title { margin-top: 6px; }
.nbw-navigation { align-items: center; flex-wrap: wrap; }
.nbw-navigation select, .nbw-navigation input { max-width: 100%; }
.nbw-entry-note { color: var(--jp-ui-font-color2, #777); font-size: 11px; }
.nbw-overview-image { border: 1px solid var(--jp-border-color2, #ddd); }
.nbw-title { overflow-wrap: anywhere; }
.nbw-layer-table td.nbw-health-cell { font-family: inherit; text-align: left; }
body[data-jp-theme-light="false"] .nbw-distribution-figure path.area,
body.vscode-dark .nbw-distribution-figure path.area { fill: #9ecbff !important; }
</style>"""
