"""Fail if a built page would load anything from the network.

Usage: python docs/_scripts/check_offline.py docs/_build/html

Looks at every HTML page for scripts, stylesheets, icons, images, media and frames whose address is
http(s):// or protocol-relative (//host/...), and at every CSS file for url(...) and @import of such
addresses. Links that a reader clicks (<a href>) are fine: they load nothing by themselves.
"""
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
LOADING = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "iframe": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "track": ("src",),
    "input": ("src",),
}
LINK_RELS = {"stylesheet", "icon", "shortcut", "preload", "modulepreload", "prefetch", "apple-touch-icon",
             "manifest", "preconnect", "dns-prefetch"}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)


class Finder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        urls = []
        if tag in LOADING:
            for name in LOADING[tag]:
                value = a.get(name) or ""
                urls += [part.strip().split(" ")[0] for part in value.split(",")] if name == "srcset" else [value]
        elif tag == "link" and set((a.get("rel") or "").lower().split()) & LINK_RELS:
            urls.append(a.get("href") or "")
        if a.get("style"):
            urls += CSS_URL.findall(a["style"])
        self.found += [(tag, u) for u in urls if u and REMOTE.match(u)]

    def handle_data(self, data):
        pass


def check(root):
    root = Path(root)
    problems = []
    pages = sorted(root.rglob("*.html"))
    for page in pages:
        finder = Finder()
        text = page.read_text(encoding="utf-8", errors="replace")
        finder.feed(text)
        problems += [f"{page.relative_to(root)}: <{tag}> loads {url}" for tag, url in finder.found]
        for block in re.findall(r"<style[^>]*>(.*?)</style>", text, re.S | re.I):
            problems += [f"{page.relative_to(root)}: <style> loads {url}" for url in CSS_URL.findall(block)]
    for css in sorted(root.rglob("*.css")):
        for url in CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(root)}: loads {url}")
    return pages, problems


def main(argv):
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    pages, problems = check(argv[0])
    if not pages:
        print(f"check_offline: no HTML pages under {argv[0]}", file=sys.stderr)
        return 1
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_offline: {len(problems)} remote resource(s) in {len(pages)} pages", file=sys.stderr)
        return 1
    print(f"check_offline: {len(pages)} pages, nothing loaded from the network")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
