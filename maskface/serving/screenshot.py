"""Screenshot of the web app after analysing a picture (the README's ``docs/webapp.png``).

    python -m maskface.serving.screenshot --output docs/webapp.png
    python -m maskface.serving.screenshot --detector-config det.yaml --detector-weights det.pth \\
        --attribute-config attr.yaml --attribute-weights attr.pth --output docs/webapp.png

Starts the app in-process on a free 127.0.0.1 port, uploads the picture in headless Chromium
(:mod:`maskface.serving.browser`), and saves the page as a palette PNG kept under ``--max-kb``.
The default picture is matplotlib's public-domain ``grace_hopper.jpg``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import threading

logger = logging.getLogger(__name__)


def default_picture() -> str:
    """Path of matplotlib's sample ``grace_hopper.jpg`` (public domain, US Navy photo)."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def save_small_png(png: bytes, path: str, max_kb: int = 300, width: int = 1280) -> int:
    """Save a screenshot as an adaptive-palette PNG, shrinking until it fits ``max_kb``."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        if img.width > width:
            img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        buf = io.BytesIO()
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buf, "PNG", optimize=True)
        if buf.tell() <= max_kb * 1024 or width < 480:
            break
        width = int(width * 0.85)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return buf.tell()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--output", default="docs/webapp.png", help="PNG to write (default docs/webapp.png)")
    p.add_argument("--image", default=None, help="picture to analyse (default: matplotlib's grace_hopper.jpg)")
    p.add_argument("--max-kb", type=int, default=300, help="size cap of the PNG (default 300)")
    p.add_argument("--width", type=int, default=1280, help="browser window width, px")
    p.add_argument("--model", default=None, help="model-zoo name (default maskface-lite)")
    p.add_argument("--detector-config")
    p.add_argument("--detector-weights")
    p.add_argument("--attribute-config")
    p.add_argument("--attribute-weights")
    p.add_argument("--device", default="auto")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from maskface.inference.predictor import FacePredictor
    from maskface.serving.app import create_app, make_server
    from maskface.serving.browser import analyze_in_browser, chrome_driver
    from maskface.utils.logger import setup_logging

    setup_logging()
    image = args.image or default_picture()
    predictor = FacePredictor(model=args.model, detector_config=args.detector_config,
                              detector_weights=args.detector_weights, attribute_config=args.attribute_config,
                              attribute_weights=args.attribute_weights, device=args.device)
    with tempfile.TemporaryDirectory(prefix="maskface-shot-") as tmp:
        app = create_app(predictor, tmp_dir=tmp)
        server = make_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        driver = chrome_driver(width=args.width, height=800)
        try:
            rows = analyze_in_browser(driver, f"http://127.0.0.1:{server.server_port}/", image, timeout=300)
            # grow the viewport to the whole page (headless windows ignore set_window_size beyond the screen)
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": args.width, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False})
            size = save_small_png(driver.get_screenshot_as_png(), args.output, args.max_kb, args.width)
        finally:
            driver.quit()
            server.shutdown()
            app.extensions["maskface"].close()
    logger.info("%s: %d face row(s), %d KB, model %s", args.output, len(rows), size // 1024,
                predictor.model_info.get("name") or predictor.model_info.get("detector_weights"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
