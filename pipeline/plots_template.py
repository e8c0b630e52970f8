"""The HTML template of ``dvc plots show``, with Vega, Vega-Lite and Vega-Embed inline, so that the
page draws its plots offline (DVC's own template loads them from a CDN, and shows a blank page
without one). The libraries come from the vl-convert-python wheel (``vl_convert.javascript_bundle``);
``.dvc/config`` names the file (``plots.html_template``), and scripts/setup.sh writes it.

    python -m pipeline.plots_template [--out .dvc/plots_template.html]
"""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import CommandLine, run_cli
from pipeline.io import atomic_path

# DVC fills {refresh_tag} and {plot_divs}; it would put the CDN <script> tags in {scripts}, left out.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>ganbench: DVC plots</title>
    <script>%s</script>
    <style>
        body { font-family: sans-serif; }
        div.vega-embed { margin: 12px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page() -> str:
    import vl_convert  # loaded only here: the bundle is the only use

    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")  # cannot end the tag early
    return PAGE % bundle


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.plots_template", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".dvc/plots_template.html"))
    args = parser.parse_args(argv)
    text = page()
    if not args.out.exists() or args.out.read_text() != text:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    print(f"plots_template: {args.out} ({len(text) // 1024} KiB, Vega inline)")


if __name__ == "__main__":
    run_cli(main)
