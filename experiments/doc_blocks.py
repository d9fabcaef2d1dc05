"""Measured tables in docs/: each lives between `<!-- name:begin -->` and
`<!-- name:end -->` and is replaced whole by the script that measures it."""
import re


def replace_block(path, name, text):
    """Replaces the marked block `name` of the file at `path` with `text`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    with open(path) as stream:
        document = stream.read()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(document):
        raise ValueError(f"{path} has no {begin} ... {end} block")
    with open(path, "w") as stream:
        stream.write(pattern.sub(lambda _: f"{begin}\n{text}\n{end}", document))
