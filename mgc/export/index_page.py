"""`index.html`: every reconstructed picture beside its results, and the
pictures that failed with their reasons. Plain HTML and CSS, no script;
every link is relative, so the output folder can be moved or served as is.

A picture's record is the dict the reconstruction writes to
`<stem>/done.json` (experiments/reconstruct.py), with at least:

    {"stem": ..., "source": ..., "folder": "<stem>",
     "files": {"input": ..., "overlay_origin": ..., "overlay_geo_origin": ...},
     "faces": [{"index": k, "files": {kind: name}, "landmark_error": float,
                "landmark_source": ..., "landmark_count": 68 or 5}],
     "seconds": {"total": ...}}

File names in records are relative to the picture's folder.
"""
import html
import os
import urllib.parse

# Marks the page as ours: a run replaces only an index.html carrying it.
GENERATOR = "mgc.export.index_page"

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ccc; padding: 6px; vertical-align: top; text-align: left; }
img { display: block; }
img.photo { max-width: 320px; max-height: 320px; }
img.crop { width: 140px; }
img.strip { height: 64px; }  /* 384 px wide: a row fits a 1400 px window */
.face { margin-bottom: 8px; }
.links a { margin-right: 0.6em; font-size: 90%; }
.small { font-size: 85%; color: #555; }
"""
# Link labels of a face's files, in display order.
_FACE_LINKS = (("obj", "OBJ"), ("ply", "PLY"), ("npz", "coefficients"), ("lm68", "lm68"),
               ("cam", "camera"), ("lm2d", "lm2d"), ("lm3d", "lm3d"), ("texture", "texture"),
               ("depth", "depth"), ("depth_preview", "depth preview"))


def _href(*parts):
    """A relative URL from path parts (each part's characters escaped)."""
    path = "/".join(p for p in parts if p)
    return html.escape(urllib.parse.quote(path.replace(os.sep, "/")), quote=True)


def _image(folder, name, css_class, alt):
    if not name:
        return ""
    url = _href(folder, name)
    return (f'<a href="{url}"><img class="{css_class}" src="{url}" '
            f'alt="{html.escape(alt, quote=True)}" loading="lazy"></a>')


def _face_cell(folder, face):
    files = face["files"]
    links = " ".join(f'<a href="{_href(folder, files[key])}">{label}</a>'
                     for key, label in _FACE_LINKS if key in files)
    error = face.get("landmark_error")
    error_text = "" if error is None else f"landmark error {error:.2f} px"
    source = face.get("landmark_source", "")
    count = face.get("landmark_count", "")
    pictures = "".join(f"<td>{_image(folder, files.get(key), css, alt)}</td>" for key, css, alt in (
        ("overlay", "crop", "crop overlay"), ("overlay_geo", "crop", "geometry overlay"),
        ("multi_pose", "strip", "multi-pose")))
    return (f'<div class="face"><b>face {face["index"]}</b> '
            f'<span class="small">{error_text} ({count} {html.escape(str(source))} '
            f'landmarks)</span><table><tr>{pictures}</tr></table>'
            f'<div class="links">{links}</div></div>')


def _row(record):
    folder = record.get("folder", record["stem"])
    files = record.get("files", {})
    seconds = record.get("seconds", {})
    total = seconds.get("total")
    time_text = "" if total is None else f"{total:.1f} s"
    faces = "".join(_face_cell(folder, face) for face in record.get("faces", []))
    source = html.escape(os.path.basename(record.get("source", record["stem"])))
    return ("<tr>"
            f'<td>{_image(folder, files.get("input"), "photo", "input")}'
            f'<div class="small">{source}</div></td>'
            f'<td>{_image(folder, files.get("overlay_origin"), "photo", "overlay on the photo")}'
            f'{_image(folder, files.get("overlay_geo_origin"), "photo", "geometry on the photo")}'
            f"</td><td>{faces}</td>"
            f'<td class="small">{len(record.get("faces", []))} face(s)<br>{time_text}</td>'
            "</tr>")


def _failures(failures):
    if not failures:
        return ""
    rows = "".join(f"<tr><td>{html.escape(image)}</td><td>{html.escape(reason)}</td></tr>"
                   for image, reason in failures)
    return (f'<h2>Failed ({len(failures)})</h2><p class="small">Also in '
            f'<a href="failures.csv">failures.csv</a>.</p>'
            f"<table><tr><th>image</th><th>reason</th></tr>{rows}</table>")


def render_index(records, failures, title="Face reconstructions", summary=""):
    """The page as a string.

    Args:
      records: picture records (see the module docstring), in display order.
      failures: list of (image, reason).
      title: page title.
      summary: a line of text shown under the title (e.g. timings).
    """
    rows = "".join(_row(record) for record in records)
    faces = sum(len(record.get("faces", [])) for record in records)
    summary_html = f'<p class="small">{html.escape(summary)}</p>' if summary else ""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f'<meta name="generator" content="{GENERATOR}">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f"<p>{len(records)} picture(s), {faces} face(s) reconstructed; "
            f"{len(failures)} failed.</p>{summary_html}"
            "<table><tr><th>input</th><th>on the photo</th><th>faces</th><th></th></tr>"
            f"{rows}</table>{_failures(failures)}</body></html>\n")


def write_index(output_dir, records, failures, title="Face reconstructions", summary=""):
    """Writes `<output_dir>/index.html` (replacing it: it only summarises
    the folder) through a temporary file, so a reader never sees half a page.

    Returns:
      the path written.
    """
    path = os.path.join(output_dir, "index.html")
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(render_index(records, failures, title, summary))
    os.replace(temporary, path)
    return path
