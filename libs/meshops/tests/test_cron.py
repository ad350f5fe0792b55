import pytest

from meshops import cron

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 6 * * ?",
        "0 30 2 ? * MON-FRI",
        "0 0/15 * * * ?",
        "0 0 12 L * ?",
        "0 0 12 15W * ?",
        "0 0 12 ? * 6#3",
        "0 0 12 ? * 6L",
        "0 0 0 1 JAN,JUL ? 2027",
        "15,45 */5 1-3 ? * SUN",
    ],
)
def test_valid_quartz_expressions(expression: str) -> None:
    cron.check(expression)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 6 * * *", "has 5 fields"),
        ("0 0 6 * * *", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 0 6 ? * ?", "exactly one of day-of-month and day-of-week must be '?'"),
        ("60 0 6 * * ?", "seconds field '60'"),
        ("0 0 24 * * ?", "hours field '24'"),
        ("0 0 6 32 * ?", "day-of-month field '32'"),
        ("0 0 6 ? 13 MON", "month field '13'"),
        ("0 0 6 ? * FUNDAY", "day-of-week field 'FUNDAY'"),
        ("0 0/0 6 * * ?", "minutes field '0/0'"),
        ("0 0 6 ? * 6#9", "day-of-week field '6#9'"),
    ],
)
def test_invalid_quartz_expressions_say_which_field(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("?", r"\?").replace("*", r"\*")):
        cron.check(expression)
