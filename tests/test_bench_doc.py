"""bench.doc.write_section: a benchmark replaces its own section and nothing else."""

from bench.doc import write_section


def test_a_section_is_replaced_and_the_prose_around_it_kept(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Gas\n\nold table\n\n## Notes\n\nprose\n")
    write_section("Gas", "new table", doc)
    assert doc.read_text() == "# Benchmarks\n\n## Gas\n\nnew table\n\n## Notes\n\nprose\n"


def test_a_missing_section_is_appended(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Gas\n\ntable\n")
    write_section("Keeper round", "timings", doc)
    assert doc.read_text() == "# Benchmarks\n\n## Gas\n\ntable\n\n## Keeper round\n\ntimings\n"


def test_a_missing_section_goes_after_the_one_named(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Liquidation\n\ntable\n\n## Floor\n\nprose\n")
    write_section("Trace", "calls", doc, after="Liquidation")
    assert doc.read_text() == (
        "# Benchmarks\n\n## Liquidation\n\ntable\n\n## Trace\n\ncalls\n\n## Floor\n\nprose\n"
    )
