"""The results tables of README.md and benchmarks/README.md are what their records give: regenerated,
they match the pages, and a number edited by hand is found."""

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def tables():
    return load_script("tables", "tables_script")


def test_every_table_matches_its_records(tables, capsys):
    assert tables.main(tables.Args(check=True)) == 0, capsys.readouterr().err


def test_a_number_edited_by_hand_is_found_and_regenerated(tables, tmp_path, capsys):
    page = tmp_path / "README.md"
    text = tables.PAGES[0].read_text()
    start = text.index("<!-- table:headline -->")
    cell = text.index("69.9", start)  # PPO's Breakout eval IQM
    page.write_text(text[:cell] + "79.9" + text[cell + 4 :])
    assert tables.main(tables.Args(check=True, pages=(page,))) == 1
    assert "headline" in capsys.readouterr().err
    assert tables.main(tables.Args(pages=(page,))) == 0
    assert page.read_text() == text


def test_each_table_names_its_record_command_and_maker(tables):
    for name, make in tables.TABLES.items():
        last = make().rstrip().splitlines()[-1]
        if last.startswith("Not recorded yet"):
            continue
        assert last.startswith("<sub>Record `benchmarks/results/") and "command `" in last, (name, last)
        assert "purejaxspi 0." in last or "recorded before records named their commit" in last, (name, last)


def test_every_table_of_the_script_is_on_a_page(tables):
    marked = {m.group(2) for page in tables.PAGES for m in tables.MARKED.finditer(page.read_text())}
    assert marked == set(tables.TABLES)
