"""People in a simulated store: JuPedSim moves them, this module decides where they go.

Every person follows a one-stage JuPedSim journey to a waypoint (or to an exit)
and is switched to the next one by a small state machine evaluated once per
sample (10 Hz by default):

* customers appear outside a door, visit displays chosen by attraction (dwelling
  at a free spot), may join the shortest till line, are served at a service
  position, or give up when their patience runs out, and leave through a door;
* staff start in their ``staff_only`` zone, move between spots in it, and now and
  then walk out to another zone and come back.

Tills are run here rather than with ``jps.NotifiableQueueStage``: JuPedSim 1.4's
queue keeps an agent that was switched to another journey in ``enqueued()``, so a
customer who abandons would hold a slot; our own slot list moves everyone up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import jupedsim as jps
import numpy as np
import shapely

from lab.sim.geometry import Point
from lab.sim.layout import Layout
from lab.sim.scenario import Scenario

log = logging.getLogger(__name__)

REACH_M = 0.35
"""A person is at their spot when this close to it."""
HEAD_REACH_M = 0.6
"""The head of a line this close to the first slot can be called to a free till."""
NEAR_SPOT_M = 1.5
"""A blocked person this close to a display or staff spot counts as arrived (someone is on it)."""
STUCK_S = 10.0
"""A walking person who has not moved ``STUCK_MOVE_M`` for this long is stuck."""
STUCK_MOVE_M = 0.3
DETOUR_S = 6.0
"""A stuck person walks to a nearby free spot for at most this long, then resumes."""
SPAWN_CLEARANCE_M = 0.5
"""Nobody may be this close to a spawn point when a person appears there."""
BROWSE_S = 8.0
"""Median time at a browsing spot for customers drawn to no display."""

# person modes
WALK, DWELL, QUEUE, TO_SERVICE, SERVICE, LEAVE = range(6)


@dataclass(slots=True)
class QueueRecord:
    """One customer's time at a till (the simulator's own bookkeeping, in seconds)."""

    person_id: int
    till: int
    join_s: float
    served_s: float | None = None
    abandoned: bool = False
    left_s: float | None = None


@dataclass(slots=True)
class PersonRecord:
    """Who a person was and when they were in the simulation (seconds)."""

    person_id: int
    is_staff: bool
    entrance: str | None
    spawn_s: float
    gone_s: float | None = None


@dataclass(slots=True)
class _Step:
    kind: str  # display | browse | till | leave
    index: int = 0


@dataclass(slots=True)
class _Person:
    pid: int
    agent: int
    staff: bool
    steps: list[_Step]
    mode: int = WALK
    target: int = -1
    target_xy: Point = (0.0, 0.0)
    anchor: Point = (math.inf, math.inf)
    anchor_t: float = 0.0
    until: float = 0.0
    dwell: float = 0.0
    occupying: int = -1
    till: int = -1
    server: int = -1
    queue: QueueRecord | None = None
    patience: float | None = None
    next_walk: float = math.inf
    out_walk: bool = False
    exit_to: int = -1
    in_line: bool = False
    detour_t: float = -1.0
    detour_xy: Point = (0.0, 0.0)


@dataclass(slots=True)
class _TillState:
    line: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)  # pid per server, -1 = free


@dataclass(slots=True)
class Frames:
    """What the engine recorded: positions per sample, people and till events."""

    tick: np.ndarray
    person: np.ndarray
    x: np.ndarray
    y: np.ndarray
    n_ticks: int
    persons: list[PersonRecord]
    queues: list[QueueRecord]
    steps: int
    detours: int


def _jps_log(level: int, msg: str) -> None:
    log.log(level, "jupedsim: %s", msg)


class Engine:
    """One run of the pedestrian model with the store's behaviour on top."""

    def __init__(self, scenario: Scenario, layout: Layout, rng: np.random.Generator) -> None:
        self.sc = scenario
        self.lay = layout
        self.rng = rng
        self.period = 1.0 / scenario.noise.sample_rate_hz
        self.per_tick = round(self.period / scenario.dt_s)
        jps.set_warning_callback(lambda m: _jps_log(logging.WARNING, m))
        jps.set_error_callback(lambda m: _jps_log(logging.ERROR, m))
        self.sim = jps.Simulation(
            model=jps.CollisionFreeSpeedModel(), geometry=layout.walkable, dt=scenario.dt_s
        )
        # every standing point gets a one-waypoint journey when first used (each stage
        # costs time in every model step); points are global indices
        self.points: list[Point] = []
        self.stages: list[tuple[int, int] | None] = []
        self.users: list[int] = []
        self.display_idx = [self._add_points(p) for p in layout.display_points]
        self.slot_idx = [self._add_points(t.slots) for t in layout.tills]
        self.service_idx = [self._add_points(t.service_points) for t in layout.tills]
        self.staff_idx = self._add_points(layout.staff_points)
        self.walk_idx = self._add_points(layout.staff_walk_points)
        self.browse_idx = self._add_points(layout.wander_points)
        self.inside_idx = [self._add_points([e.inside_point])[0] for e in layout.entrances]
        self.detour_idx = self._add_points(layout.detour_points)
        self.exits: list[tuple[int, int]] = []
        for ent in layout.entrances:
            stage = self.sim.add_exit_stage(ent.exit_area)
            self.exits.append((self.sim.add_journey(jps.JourneyDescription([stage])), stage))
        self.tills = [_TillState(busy=[-1] * len(t.service_points)) for t in layout.tills]
        self.people: dict[int, _Person] = {}
        self.detours = 0
        self.by_agent: dict[int, int] = {}
        self.records: list[PersonRecord] = []
        self.queues: list[QueueRecord] = []
        self.ent_weights = np.array([e.weight for e in layout.entrances], dtype=float)
        self.ent_weights /= self.ent_weights.sum()

    # ----------------------------------------------------------------- helpers
    def _add_points(self, points: tuple[Point, ...] | list[Point]) -> list[int]:
        out = []
        for p in points:
            self.points.append(p)
            self.stages.append(None)
            self.users.append(0)
            out.append(len(self.points) - 1)
        return out

    def _stage(self, point: int) -> tuple[int, int]:
        """``(journey_id, stage_id)`` of the waypoint at ``point``, made on first use."""
        made = self.stages[point]
        if made is None:
            stage = self.sim.add_waypoint_stage(self.points[point], REACH_M)
            made = (self.sim.add_journey(jps.JourneyDescription([stage])), stage)
            self.stages[point] = made
        return made

    def _go(self, person: _Person, point: int, t: float, mode: int = WALK) -> None:
        journey, stage = self._stage(point)
        self.sim.switch_agent_journey(person.agent, journey, stage)
        person.detour_t = -1.0
        person.target = point
        person.target_xy = self.points[point]
        person.mode = mode
        person.anchor = (math.inf, math.inf)
        person.anchor_t = t

    def _occupy(self, person: _Person, point: int) -> None:
        if person.occupying >= 0:
            self.users[person.occupying] -= 1
        person.occupying = point
        if point >= 0:
            self.users[point] += 1

    def _least_used(self, candidates: list[int]) -> int:
        fewest = min(self.users[i] for i in candidates)
        free = [i for i in candidates if self.users[i] == fewest]
        return free[int(self.rng.integers(len(free)))]

    def _reached(self, person: _Person, pos: Point, radius: float = REACH_M) -> bool:
        d = math.hypot(pos[0] - person.target_xy[0], pos[1] - person.target_xy[1])
        return d < radius

    def _stuck(self, person: _Person, pos: Point, t: float) -> bool:
        """Whether a walking person has not moved ``STUCK_MOVE_M`` in ``STUCK_S``."""
        if math.hypot(pos[0] - person.anchor[0], pos[1] - person.anchor[1]) > STUCK_MOVE_M:
            person.anchor, person.anchor_t = pos, t
            return False
        return t - person.anchor_t > STUCK_S

    def _detour(self, person: _Person, pos: Point, t: float) -> None:
        """Send a stuck person to a free spot 0.8-2.5 m away; :meth:`_resume` brings them back."""
        px, py = pos
        near = [
            i
            for i, (x, y) in enumerate(self.lay.detour_points)
            if 0.8 <= math.hypot(x - px, y - py) <= 2.5
        ] or [
            min(
                range(len(self.lay.detour_points)),
                key=lambda i: math.hypot(
                    self.lay.detour_points[i][0] - px, self.lay.detour_points[i][1] - py
                ),
            )
        ]
        pick = near[int(self.rng.integers(len(near)))]
        journey, stage = self._stage(self.detour_idx[pick])
        self.sim.switch_agent_journey(person.agent, journey, stage)
        person.detour_t = t
        person.detour_xy = self.lay.detour_points[pick]
        person.anchor, person.anchor_t = pos, t
        self.detours += 1
        log.debug(
            "person %d stuck at (%.2f, %.2f) on its way to %s at t=%.1f s: detour to %s",
            person.pid,
            px,
            py,
            "an exit" if person.mode == LEAVE else person.target_xy,
            t,
            person.detour_xy,
        )

    def _resume(self, person: _Person, t: float) -> None:
        person.detour_t = -1.0
        person.anchor, person.anchor_t = (math.inf, math.inf), t
        if person.mode == LEAVE:
            journey, stage = self.exits[person.exit_to]
            self.sim.switch_agent_journey(person.agent, journey, stage)
        elif person.mode == QUEUE:
            person.target = -1  # the till puts them back on their slot
        else:
            self._go(person, person.target, t, person.mode)

    # ---------------------------------------------------------------- spawning
    def _add_agent(self, position: Point, point: int, speed: float) -> int | None:
        journey, stage = self._stage(point)
        params = jps.CollisionFreeSpeedModelAgentParameters(
            position=position,
            journey_id=journey,
            stage_id=stage,
            desired_speed=speed,
            radius=self.sc.customers.radius_m,
        )
        try:
            return int(self.sim.add_agent(params))
        except RuntimeError as exc:
            log.debug("cannot place a person at %s: %s", position, exc)
            return None

    def _free_spot(self, candidates: tuple[Point, ...], taken: list[Point]) -> Point | None:
        order = self.rng.permutation(len(candidates))
        for i in order:
            p = candidates[int(i)]
            if any(True for _ in self.sim.agents_in_range(p, SPAWN_CLEARANCE_M)):
                continue
            if any(math.hypot(p[0] - q[0], p[1] - q[1]) < SPAWN_CLEARANCE_M for q in taken):
                continue
            return p
        return None

    def spawn_staff(self, t: float) -> list[tuple[int, Point]]:
        """Place the staff in their zone at the start."""
        staff = self.sc.staff
        placed: list[tuple[int, Point]] = []
        if staff is None or staff.count == 0:
            return placed
        taken: list[Point] = []
        for _ in range(staff.count):
            spot = self._free_spot(self.lay.staff_points, taken)
            if spot is None:
                raise RuntimeError(f"no free spot for staff in zone {staff.zone!r}")
            home = self.staff_idx[self.lay.staff_points.index(spot)]
            agent = self._add_agent(spot, home, 1.0)
            if agent is None:
                raise RuntimeError(f"cannot place staff at {spot} in zone {staff.zone!r}")
            taken.append(spot)
            person = self._new_person(agent, True, None, t)
            person.target, person.target_xy = home, spot
            self._occupy(person, home)
            person.mode = DWELL
            person.until = t + staff.pause_s.sample(self.rng)
            if staff.walks is not None:
                person.next_walk = t + float(self.rng.exponential(staff.walks.every_s))
            placed.append((person.pid, spot))
        return placed

    def _new_person(self, agent: int, staff: bool, entrance: str | None, t: float) -> _Person:
        pid = len(self.records) + 1
        person = _Person(pid, agent, staff, [])
        self.people[pid] = person
        self.by_agent[agent] = pid
        self.records.append(PersonRecord(pid, staff, entrance, t))
        return person

    def _plan(self) -> list[_Step]:
        steps = [
            _Step("display", i)
            for i, d in enumerate(self.sc.displays)
            if self.rng.random() < d.attraction
        ]
        order = self.rng.permutation(len(steps))
        steps = [steps[int(i)] for i in order]
        buys = bool(self.tills) and self.rng.random() < self.sc.customers.purchase_probability
        if not steps and not buys:
            steps.append(_Step("browse"))
        if buys:
            steps.append(_Step("till"))
        out = int(self.rng.choice(len(self.exits), p=self.ent_weights))
        steps.append(_Step("leave", out))
        return steps

    def spawn_customer(
        self, entrance: int, t: float, taken: list[Point]
    ) -> tuple[int, Point] | None:
        """Place one arriving customer outside ``entrance``; None when the doorway is crowded."""
        ent = self.lay.entrances[entrance]
        spot = self._free_spot(ent.spawn_points, taken)
        if spot is None:
            return None
        speed = self.sc.customers.speed_mps.sample(self.rng)
        agent = self._add_agent(spot, self.inside_idx[entrance], max(speed, 0.3))
        if agent is None:
            return None
        taken.append(spot)
        person = self._new_person(agent, False, ent.id, t)
        person.steps = self._plan()
        person.target = self.inside_idx[entrance]
        person.target_xy = self.points[person.target]
        self._next_step(person, t)
        return person.pid, spot

    # -------------------------------------------------------------- behaviour
    def _next_step(self, person: _Person, t: float) -> None:
        self._occupy(person, -1)
        step = person.steps.pop(0)
        if step.kind == "display":
            point = self._least_used(self.display_idx[step.index])
            self._occupy(person, point)
            person.dwell = self.sc.displays[step.index].dwell_s.sample(self.rng)
            self._go(person, point, t)
        elif step.kind == "browse":
            point = self._least_used(self.browse_idx)
            self._occupy(person, point)
            person.dwell = BROWSE_S * math.exp(0.5 * float(self.rng.standard_normal()))
            self._go(person, point, t)
        elif step.kind == "till":
            self._join_till(person, t)
        else:
            journey, stage = self.exits[step.index]
            self.sim.switch_agent_journey(person.agent, journey, stage)
            person.mode = LEAVE
            person.exit_to = step.index
            person.target = -1
            person.anchor, person.anchor_t = (math.inf, math.inf), t

    def _join_till(self, person: _Person, t: float) -> None:
        def load(i: int) -> float:
            st = self.tills[i]
            return (len(st.line) + sum(b >= 0 for b in st.busy)) / len(st.busy)

        loads = [load(i) for i in range(len(self.tills))]
        best = min(loads)
        choice = [i for i, v in enumerate(loads) if v == best]
        till = choice[int(self.rng.integers(len(choice)))]
        person.till = till
        person.mode = QUEUE
        person.target = -1
        person.queue = None
        person.in_line = False
        ab = self.sc.abandon
        person.patience = (
            ab.patience_s.sample(self.rng) if self.rng.random() < ab.probability else None
        )
        self.tills[till].line.append(person.pid)

    def _staff_step(self, person: _Person, t: float) -> None:
        staff = self.sc.staff
        assert staff is not None
        if person.out_walk or t < person.next_walk or staff.walks is None:
            # back home / a small move within the staff zone
            candidates = [i for i in self.staff_idx if i != person.target] or self.staff_idx
            point = self._least_used(candidates)
            person.dwell = staff.pause_s.sample(self.rng)
            if person.out_walk and staff.walks is not None:
                person.next_walk = t + float(self.rng.exponential(staff.walks.every_s))
            person.out_walk = False
        else:
            point = self._least_used(self.walk_idx)
            person.dwell = staff.walks.dwell_s.sample(self.rng)
            person.out_walk = True
        self._occupy(person, point)
        self._go(person, point, t)

    def _update_till(self, i: int, pos: dict[int, Point], t: float) -> None:
        st = self.tills[i]
        lay = self.lay.tills[i]
        for pid in list(st.line):
            person = self.people[pid]
            p = pos.get(person.agent)
            if p is None:
                continue
            if person.queue is None and shapely.contains_xy(lay.queue_shape, p[0], p[1]):
                person.queue = QueueRecord(pid, i, t)
            if (
                person.queue is not None
                and person.patience is not None
                and t - person.queue.join_s >= person.patience
            ):
                st.line.remove(pid)
                person.queue.abandoned = True
                person.queue.left_s = t
                self.queues.append(person.queue)
                log.debug(
                    "person %d gave up at till %d after %.0f s", pid, i, t - person.queue.join_s
                )
                self._next_step(person, t)
        while st.line and -1 in st.busy:
            head = self.people[st.line[0]]
            p = pos.get(head.agent)
            if p is None or head.detour_t >= 0 or head.target != self.slot_idx[i][0]:
                break
            if not self._reached(head, p, HEAD_REACH_M):
                break
            st.line.pop(0)
            server = st.busy.index(-1)
            st.busy[server] = head.pid
            head.server = server
            if head.queue is None:
                head.queue = QueueRecord(head.pid, i, t)
            self._go(head, self.service_idx[i][server], t, TO_SERVICE)
        slots = self.slot_idx[i]
        for k, pid in enumerate(st.line):
            person = self.people[pid]
            if person.detour_t >= 0:
                continue
            if not person.in_line:
                # join at the back of the line, then move up to one's place
                p = pos.get(person.agent)
                if p is not None and person.target == slots[-1]:
                    person.in_line = self._reached(person, p, HEAD_REACH_M)
            want = slots[min(k, len(slots) - 1)] if person.in_line else slots[-1]
            if person.target != want:
                self._go(person, want, t, QUEUE)

    def step(self, pos: dict[int, Point], t: float) -> None:
        """Advance every person's plan at time ``t`` (seconds) given their positions."""
        for person in list(self.people.values()):
            p = pos.get(person.agent)
            if p is None:
                continue
            if person.detour_t >= 0:
                d = math.hypot(p[0] - person.detour_xy[0], p[1] - person.detour_xy[1])
                if d < REACH_M or t - person.detour_t > DETOUR_S:
                    self._resume(person, t)
                continue
            mode = person.mode
            if mode == WALK:
                near = self._reached(person, p, NEAR_SPOT_M)
                if self._reached(person, p):
                    person.mode = DWELL
                    person.until = t + person.dwell
                elif self._stuck(person, p, t):
                    if near:  # someone stands on the spot: browse next to it
                        person.mode = DWELL
                        person.until = t + person.dwell
                    else:
                        self._detour(person, p, t)
            elif mode == DWELL:
                if t >= person.until:
                    if person.staff:
                        self._staff_step(person, t)
                    else:
                        self._next_step(person, t)
            elif mode == TO_SERVICE:
                if self._reached(person, p):
                    assert person.queue is not None
                    person.queue.served_s = t
                    person.mode = SERVICE
                    person.until = t + self.sc.tills[person.till].service_s.sample(self.rng)
                elif self._stuck(person, p, t):
                    self._detour(person, p, t)
            elif mode == SERVICE:
                if t >= person.until:
                    assert person.queue is not None
                    person.queue.left_s = t
                    self.queues.append(person.queue)
                    self.tills[person.till].busy[person.server] = -1
                    self._next_step(person, t)
            elif mode == LEAVE or (mode == QUEUE and person.target >= 0):
                far = mode == LEAVE or not self._reached(person, p, 2.0)
                if far and self._stuck(person, p, t):
                    self._detour(person, p, t)
        for i in range(len(self.tills)):
            self._update_till(i, pos, t)

    def customers_inside(self) -> int:
        """Customers still in the simulation."""
        return sum(1 for p in self.people.values() if not p.staff)

    # -------------------------------------------------------------------- run
    def run(self, arrivals: np.ndarray, entrances: np.ndarray) -> Frames:
        """Run until arrivals end (and, with ``drain``, until every customer has left).

        Args:
            arrivals: sorted arrival times in seconds.
            entrances: the entrance index of each arrival.

        Returns:
            The recorded frames, people and queue events.
        """
        arr = self.sc.arrivals
        end_s = arr.duration_s + (arr.max_drain_s if arr.drain else 0.0)
        max_ticks = math.floor(end_s / self.period + 1e-9)
        ticks: list[np.ndarray] = []
        pids: list[np.ndarray] = []
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        next_arrival = 0
        pending: list[int] = []
        k = 0
        t = 0.0
        self.spawn_staff(0.0)
        while True:
            t = k * self.period
            pos = {a.id: a.position for a in self.sim.agents()}
            for pid, person in list(self.people.items()):
                if person.agent not in pos:
                    self.records[pid - 1].gone_s = t
                    if person.mode != LEAVE:
                        log.warning(
                            "person %d vanished while not leaving (mode %d)", pid, person.mode
                        )
                    self._occupy(person, -1)
                    del self.people[pid]
                    del self.by_agent[person.agent]
            self.step(pos, t)
            while next_arrival < len(arrivals) and arrivals[next_arrival] <= t + 1e-9:
                pending.append(next_arrival)
                next_arrival += 1
            taken: list[Point] = []
            new: list[tuple[int, Point]] = []
            still: list[int] = []
            for j in pending:
                placed = self.spawn_customer(int(entrances[j]), t, taken)
                if placed is None:
                    still.append(j)
                else:
                    new.append(placed)
            if len(still) > 5 and len(still) != len(pending):
                log.warning("%d arrivals wait for room at the door at t=%.0f s", len(still), t)
            pending = still
            n = len(pos) + len(new)
            tk = np.full(n, k, dtype=np.int64)
            pp = np.empty(n, dtype=np.int64)
            px = np.empty(n, dtype=np.float64)
            py = np.empty(n, dtype=np.float64)
            for j, (agent, (x, y)) in enumerate(pos.items()):
                pp[j] = self.by_agent[agent]
                px[j], py[j] = x, y
            for j, (pid, (x, y)) in enumerate(new, start=len(pos)):
                pp[j], px[j], py[j] = pid, x, y
            ticks.append(tk)
            pids.append(pp)
            xs.append(px)
            ys.append(py)
            done_arrivals = next_arrival >= len(arrivals) and not pending
            drained = done_arrivals and self.customers_inside() == 0
            if t >= arr.duration_s - 1e-9 and (not arr.drain or drained):
                break
            if k >= max_ticks:
                log.warning(
                    "stopping at t=%.0f s with %d customers still inside (max_drain_s reached)",
                    t,
                    self.customers_inside(),
                )
                break
            self.sim.iterate(self.per_tick)
            k += 1
        for person in self.people.values():
            if person.queue is not None and person.queue not in self.queues:
                self.queues.append(person.queue)
        self.queues.sort(key=lambda q: (q.join_s, q.person_id))
        return Frames(
            np.concatenate(ticks),
            np.concatenate(pids),
            np.concatenate(xs),
            np.concatenate(ys),
            k + 1,
            self.records,
            self.queues,
            k * self.per_tick,
            self.detours,
        )
