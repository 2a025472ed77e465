import click
import pytest
from click.testing import CliRunner

from impeccable.core.cli import one_line_errors, parse_shape
from impeccable.core.errors import InputError


def test_message_has_what_received_expected_todo():
    err = InputError("volume is 2-D", received="shape (3, 4)", expected="3-D", todo="pass a volume")
    assert str(err) == "volume is 2-D | received shape (3, 4) | expected 3-D | pass a volume"


def test_one_line_errors_exit_1_without_traceback():
    @click.command()
    @one_line_errors
    def cmd():
        raise InputError("bad\nthing", received=1)

    result = CliRunner().invoke(cmd)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: bad thing | received 1"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("text", "expected"), [("1259,300,300", (1259, 300, 300)), ("64x128", None)])
def test_parse_shape(text, expected):
    if expected is None:
        assert parse_shape(text, n=2) == (64, 128)
    else:
        assert parse_shape(text) == expected


@pytest.mark.parametrize("text", ["1,2", "a,b,c", "0,1,2"])
def test_parse_shape_rejects(text):
    with pytest.raises(click.BadParameter):
        parse_shape(text)
