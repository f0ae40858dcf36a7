"""The docs site: generated reference pages are fresh, links from code land on real pages and
anchors, the README stays short, and ``mkdocs build --strict`` passes (broken links fail)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from herd import config as hc
from herd import docs_links

ROOT = Path(__file__).resolve().parents[2]


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


GEN = _gen_docs()


@pytest.mark.parametrize("page", sorted(GEN.PAGES))
def test_generated_pages_are_fresh(page):
    # Imports every config class and the metrics module: an import error fails here, never skips.
    text = GEN.PAGES[page]()
    committed = (ROOT / page).read_text(encoding="utf-8")
    assert committed == text, f"{page} is stale: run python scripts/gen_docs.py"


def test_configuration_reference_has_every_field_of_every_config_class():
    text = (ROOT / docs_links.CONFIGURATION).read_text(encoding="utf-8")
    classes, _ = GEN._walk(s.cls for s in GEN.config_classes())
    assert len(classes) > len(GEN.config_classes())  # embedded ones (ServerOptions, ...) were found
    for cls in classes:
        section = text.split(f"{{#{docs_links.config_anchor(cls)}}}", 1)
        assert len(section) == 2, f"no section for {cls.__name__}"
        body = section[1].split("\n## ", 1)[0]
        docs = hc.field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                assert f"| `{f.name}` |" in body, f"{cls.__name__}.{f.name} missing"
                assert docs[f.name], f"{cls.__name__}.{f.name} has no help text"


def test_metrics_reference_names_every_declared_metric():
    from herd.telemetry import metrics as hm

    text = (ROOT / docs_links.METRICS).read_text(encoding="utf-8")
    names = {v for k, v in vars(hm).items() if k.isupper() and k != "PREFIX" and isinstance(v, str) and v.startswith(hm.PREFIX)}
    assert names and all(f"`{name}`" in text for name in names), sorted(n for n in names if f"`{n}`" not in text)
    declared = {m.name for m in GEN.declared_metrics()}
    assert names - {hm.PROCESS_CPU_SECONDS, hm.PROCESS_RESIDENT_BYTES} <= declared


def test_field_docs_read_option_help_and_attribute_docstrings():
    from replay_service.config import TableConfig

    assert hc.field_docs(TableConfig)["max_times_sampled"] == "An item is deleted after this many samples (0 = never)."

    @dataclasses.dataclass(frozen=True)
    class Example:
        a: int = hc.option(1, "from the metadata")
        b: int = 2
        """from the docstring"""

    assert hc.field_docs(Example) == {"a": "from the metadata", "b": "from the docstring"}


def _anchors(md: str) -> set[str]:
    """Explicit ``{#anchor}`` ids and the slugs of plain headings (Python-Markdown's toc slugify)."""
    anchors = set(re.findall(r"\{#([\w-]+)\}", md))
    for heading in re.findall(r"^#+ (.+?)\s*$", md, flags=re.M):
        if "{#" in heading:
            continue
        text = re.sub(r"[`*]", "", heading).lower()
        anchors.add(re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text)).strip("-"))
    return anchors


def _page_and_anchor(link: str) -> tuple[Path, str]:
    path, _, anchor = link.partition("#")
    return ROOT / path, anchor


def test_links_in_code_name_real_pages_and_anchors():
    links = [v for k, v in vars(docs_links).items() if k.isupper() and isinstance(v, str) and v.startswith("docs/")]
    classes, _ = GEN._walk(s.cls for s in GEN.config_classes())
    links += [docs_links.config_page(cls) for cls in classes]
    links += [docs_links.agent_page("impala")]
    for link in links:
        page, anchor = _page_and_anchor(link)
        assert page.is_file(), link
        if anchor:
            assert anchor in _anchors(page.read_text(encoding="utf-8")), link


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from pages(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)

    in_nav = set(pages(config["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == in_nav


def test_errors_and_help_point_into_the_docs(capsys):
    from herd.cli import main

    for args, link in [
        (["config", "agent.entropy_kost=0.1"], "see docs/configuration.md#impalaconfig"),
        (["config", "--actors", "0"], "see docs/configuration.md#runconfig"),
        (["config", "--env", "gym:NoSuchEnv-v0"], "see docs/environments.md"),
        (["config", "--env", "nope:CartPole-v1"], "see docs/environments.md"),
        (["config", "agent=3"], "see docs/agents/index.md"),
    ]:
        with pytest.raises(SystemExit):
            main(args)
        assert capsys.readouterr().err.rstrip().endswith(link), args
    with pytest.raises(SystemExit):
        main(["--help"])
    assert docs_links.CONFIGURATION in capsys.readouterr().out.replace("\n", " ")


def test_readme_is_short_and_starts_with_what_and_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 300
    head = "\n".join(lines[:40])
    assert "make run" in head and "make test" in head
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", "\n".join(lines))
    assert links
    for path, anchor in links:
        assert (ROOT / path).is_file(), path
        if anchor:
            assert anchor in _anchors((ROOT / path).read_text(encoding="utf-8")), f"{path}#{anchor}"


def test_mkdocs_build_strict(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # mkdocs-material's banner, not a warning of ours
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()
