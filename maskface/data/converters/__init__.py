"""Converters from public face datasets and annotation tools to the COCO face format.

One module per source, each with a ``convert_*`` function returning a COCO face dict (format in
``datasets/README.md``): :mod:`.wider`, :mod:`.lfw_parts`, :mod:`.lfw`, :mod:`.celebamask`, :mod:`.utkface`,
:mod:`.fer2013`, :mod:`.labelme`, :mod:`.cvat`, :mod:`.auto` (mediapipe); :mod:`.to_labelme`
goes back to labelme for manual correction; :mod:`.ops` merges, splits and summarises COCO face
files; :mod:`.common` holds the shared builder and helpers. The CLI is
``tools/convert_annotations.py``.
"""
