"""A small request handler whose pools are fully typed: what `mypy --strict` sees and checks.

Three pools, one per way of telling a pool how to clean an object:

- `Pool[RequestContext]` from a factory: `RequestContext` is a dataclass with `reset()`,
  so it satisfies the `Reset` protocol and `Pool(RequestContext, 4)` needs nothing else.
  It also bounds how many requests are in flight: `try_allocate()` returns
  `OwnedRef[RequestContext] | None`, and after `if ref is None: return busy` mypy knows
  `ref` is an `OwnedRef[RequestContext]`.
- `Pool[Connection]` with `Pool.from_items(...)`: a few expensive "database connections"
  opened up front by the application. Their `reset()` rolls back a transaction the last
  borrower left open, which is what happens when a handler raises inside `with`.
- `Pool[list[str]]` with `Pool(list, 8, reset=list.clear)`: a type with no `reset()` of
  its own. Leaving out `reset=` there is a mypy error, not a runtime surprise.

Every handle is typed `OwnedRef[T]`, and `with pool.allocate() as obj:` gives `obj: T`, so
passing a connection where a context is expected, or giving an `OwnedRef[Connection]` to
`Pool[RequestContext].deallocate()`, fails the type check (a handle given to another pool
of the same type is caught at runtime: `ForeignRefError`). Everything is sans-IO: no
sockets, no threads.

Run `python examples/typed_app.py [--bursts N]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from objpool import OwnedRef, Pool, PoolStats

MAX_IN_FLIGHT: Final = 4


@dataclass
class RequestContext:
    """Per-request scratch state, reused across requests (implements `Reset`)."""

    method: str = ""
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget the request; keep the dict for the next one."""
        self.method = ""
        self.path = ""
        self.params.clear()


@dataclass
class Connection:
    """A stand-in for a database connection: slow to open, so the app opens a few up front."""

    dsn: str
    table: dict[str, str] = field(default_factory=dict)
    in_transaction: bool = False
    queries: int = 0
    rollbacks: int = 0

    def begin(self) -> None:
        """Start a transaction."""
        self.in_transaction = True

    def commit(self) -> None:
        """End the transaction."""
        self.in_transaction = False

    def get(self, key: str) -> str | None:
        """One query."""
        self.queries += 1
        return self.table.get(key)

    def reset(self) -> None:
        """Roll back whatever the previous borrower left open."""
        if self.in_transaction:
            self.rollbacks += 1
            self.in_transaction = False


@dataclass(frozen=True)
class Response:
    """What the handler answers."""

    status: int
    body: str


class App:
    """Admits at most `MAX_IN_FLIGHT` requests at once and serves them from pooled objects."""

    def __init__(self, replicas: int = 2) -> None:
        """Open `replicas` connections and build the other pools."""
        data = {f"item{i}": f"value {i}" for i in range(10)}
        self.contexts: Pool[RequestContext] = Pool(RequestContext, MAX_IN_FLIGHT, name="contexts")
        self.connections = [Connection(f"db://replica{i}", dict(data)) for i in range(replicas)]
        self.db: Pool[Connection] = Pool.from_items(self.connections, name="db")
        self.scratch: Pool[list[str]] = Pool(list, 8, reset=list.clear, name="scratch")

    def admit(self, raw: str) -> OwnedRef[RequestContext] | Response:
        """Parse a request into a pooled context, or answer 503 when all are in use."""
        ref = self.contexts.try_allocate()
        if ref is None:
            return Response(503, "busy, try again")
        # Here mypy has narrowed `ref` to OwnedRef[RequestContext].
        ctx = ref.value
        ctx.method, _, target = raw.partition(" ")
        ctx.path, _, query = target.partition("?")
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            ctx.params[key] = value
        return ref

    def finish(self, ref: OwnedRef[RequestContext]) -> Response:
        """Serve an admitted request; every pooled object goes back, even on error."""
        try:
            with ref as ctx, self.db.allocate() as conn, self.scratch.allocate() as lines:
                return self._handle(ctx, conn, lines)
        except KeyError as exc:
            # The connection's reset() has already rolled back the open transaction.
            return Response(404, f"no such item: {exc.args[0]}")

    def _handle(self, ctx: RequestContext, conn: Connection, lines: list[str]) -> Response:
        if ctx.method != "GET":
            return Response(405, f"method {ctx.method} not allowed")
        conn.begin()
        for key in ctx.path.strip("/").split("/")[1:]:
            value = conn.get(key)
            if value is None:
                raise KeyError(key)  # leaves the transaction open: reset() must roll it back
            lines.append(f"{key}={value}")
        if ctx.params.get("upper") == "1":
            lines[:] = [line.upper() for line in lines]
        conn.commit()
        return Response(200, "; ".join(lines))

    def stats(self) -> dict[str, PoolStats]:
        """Each pool's counters, by name."""
        return {"contexts": self.contexts.stats(), "db": self.db.stats(), "scratch": self.scratch.stats()}


def requests(burst: int) -> list[str]:
    """Six requests per burst: more than `MAX_IN_FLIGHT`, one missing item, one bad method."""
    return [
        f"GET /items/item{burst % 10}",
        f"GET /items/item{burst % 10}/item{(burst + 1) % 10}?upper=1",
        "POST /items/item1",
        "GET /items/nope",
        f"GET /items/item{(burst + 2) % 10}",
        "GET /items/item9",
    ]


@dataclass(frozen=True)
class Summary:
    """Responses in arrival order, and each pool's stats at the end."""

    responses: list[Response]
    stats: dict[str, PoolStats]
    rollbacks: int


def run(bursts: int) -> Summary:
    """Admit each burst of requests at once, then finish the admitted ones."""
    app = App()
    responses: list[Response] = []
    for burst in range(bursts):
        admitted: list[tuple[int, OwnedRef[RequestContext]]] = []
        answers: list[Response | None] = []
        for raw in requests(burst):
            outcome = app.admit(raw)
            if isinstance(outcome, Response):
                answers.append(outcome)
            else:
                admitted.append((len(answers), outcome))
                answers.append(None)
        for position, ref in admitted:
            answers[position] = app.finish(ref)
        responses.extend(answer for answer in answers if answer is not None)
    return Summary(responses, app.stats(), sum(conn.rollbacks for conn in app.connections))


def main(argv: Sequence[str] | None = None) -> Summary:
    """Serve a few bursts of requests and print the responses and pool stats."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bursts", type=int, default=3, help="bursts of 6 requests (default 3)")
    args = parser.parse_args(argv)
    summary = run(args.bursts)
    for response in summary.responses:
        print(f"{response.status} {response.body}")
    for name, s in summary.stats.items():
        print(
            f"{name}: {s.allocations} allocations, {s.exhausted} refused, "
            f"high water {s.high_water}/{s.capacity}"
        )
    print(f"transactions rolled back by Connection.reset(): {summary.rollbacks}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
