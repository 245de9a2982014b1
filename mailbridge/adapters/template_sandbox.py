"""The Jinja2 sandbox templates render in: immutable, with bounded work per render.

Templates are operator-edited and every value may be customer text, so the environment
refuses ``|safe`` and ``{% autoescape false %}``, counts lookups, calls, operators and the
turns of every loop, and stops a render whose output or intermediate values grow past fixed
limits.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, nodes
from jinja2.bccache import BytecodeCache
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Bounds on what one render may do. Templates are written by operators, not customers, but a
# slip such as range(10**9) must fail fast instead of stalling the daemon.
_MAX_SIZE = 1_000_000  # characters of output, or length of any string or list built
_MAX_COUNT = 10_000  # a range, or a width or count given to a filter
_MAX_STEPS = 200_000  # lookups, calls, operators and loop turns
_steps_left: ContextVar[list[int] | None] = ContextVar("template_steps_left", default=None)
_COUNTED_LOOP = "_counted_loop"  # the global every {% for %} iterates through
_PRINTF_SPEC = re.compile(r"%[^a-zA-Z%]*")
_BRACE_SPEC = re.compile(r"\{[^{}]*:[^{}]*(?:\d{5}|\{)")  # "{:>99999}", "{:{width}}"


def _step() -> None:
    left = _steps_left.get()
    if left is not None:
        left[0] -= 1
        if left[0] < 0:
            raise SecurityError(f"the template did more than {_MAX_STEPS} steps")


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > _MAX_SIZE:
        raise SecurityError(f"a value grew beyond {_MAX_SIZE} items")
    return value


def _check_printf(pattern: Any) -> None:
    if isinstance(pattern, str):
        for spec in _PRINTF_SPEC.findall(pattern):
            if "*" in spec or re.search(r"\d{5}", spec):
                raise SecurityError("format widths are limited to four digits")


def _text_length(items: list[Any] | tuple[Any, ...]) -> int:
    return sum(len(item) for item in items if isinstance(item, str))


def _check_call(method: Any, args: tuple[Any, ...]) -> None:
    """Refuse a string method call whose result could outgrow _MAX_SIZE, before it runs.

    The size is estimated from the string and the arguments: "x".ljust(n), s.replace(a, b),
    sep.join(items). A format string may not ask for huge or computed widths.
    """
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    if getattr(method, "__name__", "") in ("format", "format_map"):
        if _BRACE_SPEC.search(owner):
            raise SecurityError("format widths are limited to four digits")
        return
    factor, total = 1, 0
    for arg in args:
        if isinstance(arg, int):
            factor = max(factor, abs(arg))
        elif isinstance(arg, str):
            factor = max(factor, len(arg))
        elif isinstance(arg, list | tuple):
            factor = max(factor, len(arg))
            total += _text_length(arg)
    if len(owner) * factor + total > _MAX_SIZE:
        raise SecurityError(f"the result would be longer than {_MAX_SIZE} characters")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and isinstance(left, int) and isinstance(right, int):
        if abs(left) > 1 and abs(left).bit_length() * abs(right) > 4096:
            raise SecurityError("the power is too large")
    elif operator == "*":
        # Checked before multiplying: the product itself is what would exhaust memory.
        for seq, count in ((left, right), (right, left)):
            sequence = isinstance(seq, str | list | tuple) and isinstance(count, int)
            if sequence and len(seq) * count > _MAX_SIZE:
                raise SecurityError(f"a value grew beyond {_MAX_SIZE} items")
    elif operator == "%":
        _check_printf(left)


def _counted_loop(items: Any) -> Iterator[Any]:
    for item in items:
        _step()
        yield item


class _CountedRange:
    """range() for templates: bounded in length, and each turn counts as a step."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > _MAX_COUNT:
            raise SecurityError(f"range() is limited to {_MAX_COUNT} items")

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[int]:
        for number in self._range:
            _step()
            yield number


def _bounded_filter(function: Callable[..., Any], printf: bool) -> Callable[..., Any]:
    """A filter refusing widths and counts above _MAX_COUNT, and joins above _MAX_SIZE."""
    # The filtered value follows the context or environment Jinja passes to some filters.
    first_argument = 2 if getattr(function, "jinja_pass_arg", None) else 1

    @functools.wraps(function)  # keeps Jinja's pass_* marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value = args[first_argument - 1]
        if printf:
            _check_printf(value)
        elif isinstance(value, list | tuple) and _text_length(value) > _MAX_SIZE:
            raise SecurityError(f"the result would be longer than {_MAX_SIZE} characters")
        for arg in (*args[first_argument:], *kwargs.values()):
            if not printf and isinstance(arg, int) and abs(arg) > _MAX_COUNT:
                raise SecurityError(f"widths and counts are limited to {_MAX_COUNT}")
        return _sized(function(*args, **kwargs))

    return bounded


def _bounded_replace(function: Callable[..., Any]) -> Callable[..., Any]:
    """|replace, refused before it runs when the result would outgrow _MAX_SIZE: replacing
    "" inserts the new text between every two characters of a customer's."""

    @functools.wraps(function)  # keeps Jinja's pass_eval_context marker
    def bounded(eval_ctx: Any, value: Any, old: Any, new: Any, count: int | None = None) -> Any:
        text, old_text, new_text = str(value), str(old), str(new)
        hits = text.count(old_text) if old_text else len(text) + 1
        if count is not None and count >= 0:
            hits = min(hits, count)
        if len(text) + hits * (len(new_text) - len(old_text)) > _MAX_SIZE:
            raise SecurityError(f"the result would be longer than {_MAX_SIZE} characters")
        return function(eval_ctx, value, old, new, count)

    return bounded


def _quote(text: object) -> str:
    return "\n".join(f"> {line}".rstrip() for line in str(text).split("\n"))


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with StrictUndefined and a bounded amount of work."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, loader: BaseLoader, bytecode_cache: BytecodeCache | None = None) -> None:
        super().__init__(
            loader=loader,
            bytecode_cache=bytecode_cache,
            undefined=StrictUndefined,
            autoescape=lambda name: name is not None and name.endswith(".html.j2"),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,
        )
        del self.globals["lipsum"]  # lipsum(10**9) is a cheap way to exhaust memory
        self.globals["range"] = _CountedRange
        bounded = ("center", "indent", "slice", "batch", "wordwrap", "truncate", "format", "join")
        for name in bounded:
            self.filters[name] = _bounded_filter(self.filters[name], printf=name == "format")
        self.filters["replace"] = _bounded_replace(self.filters["replace"])
        self.filters["quote"] = _quote
        self.globals[_COUNTED_LOOP] = _counted_loop

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        """Every {% for %} iterates through _counted_loop, each turn a step: two nested
        loops over a customer's text would otherwise run for hours (a 3,000-character
        text: 9 million turns, 1.7 s) without a lookup, call or operator to count."""
        for loop in source.find_all(nodes.For):
            counted = nodes.Call(nodes.Name(_COUNTED_LOOP, "load"), [loop.iter], [], None, None)
            loop.iter = counted.set_lineno(loop.lineno)
        return str(super()._generate(source, name, filename, defer_init))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return _sized(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        return _sized(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return _sized(super().getitem(obj, argument))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        for arg in (*args, *kwargs.values()):
            _sized(arg)
        # str.format arrives wrapped by the sandbox; __wrapped__ leads to the string.
        _check_call(getattr(__obj, "__wrapped__", __obj), (*args, *kwargs.values()))
        return _sized(super().call(__context, __obj, *args, **kwargs))


def render_bounded(template: Template, values: dict[str, object]) -> str:
    """Render with a fresh step budget, stopping once the output outgrows _MAX_SIZE."""
    token = _steps_left.set([_MAX_STEPS])
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(values):
            size += len(chunk)
            if size > _MAX_SIZE:
                raise SecurityError(f"the output is longer than {_MAX_SIZE} characters")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _steps_left.reset(token)
