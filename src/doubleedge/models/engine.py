"""Greedy decoding of many requests at once on the CPU: what makes a local model fast enough for a scan.

A scan sends many prompts that begin the same way (the bot's system prompt, often with the
same help-centre articles). One worker thread serves every request of a model:

* **prefix cache**: the keys and values of a prompt's shared beginning (the caller says
  where it ends) are computed once and copied for every request that starts with it;
* **continuous batching**: requests that arrive while others are being answered join the
  running batch at the next token, so one forward pass computes one token for every reply;
* **preallocated cache buffers**: transformers' default cache concatenates, copying the
  whole cache at every token;
* **loop control** that keeps decoding greedy (the same prompt gets the same reply) but
  stops the loops small models fall into: a mild repetition penalty and no repeated
  4-gram over the reply, stop tokens and stop strings.

Rows of a batch have prompts of different lengths. Each row keeps its own positions, and
the attention mask hides the slots a row does not use, so a row attends exactly to its
own tokens wherever they sit in the shared buffer.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

# Rows decoded together. Each row holds a buffer as long as the batch's longest prompt
# (SmolLM2-135M: 46 KB per token). On 2 cores a step costs about as much more as it has
# rows (the matrix multiplies are compute-bound), so rows past a few add memory, not speed:
# Lab 01's real-model scan took 76 s with 5 rows and 79 s with 6, peaking at 1.86 GB and
# 2.03 GB, and 75-84 s at 2.1-2.7 GB with 8 (bench/README.md).
MAX_BATCH = 5
PREFIX_ENTRIES = 8  # distinct prompt beginnings kept (system prompt x retrieved articles)
REPETITION_PENALTY = 1.1  # over the reply's own tokens, not the prompt's (leaking it is the point)
NO_REPEAT_NGRAM = 4
GROW = 256  # buffer slots added at a time


def torch_threads() -> int:
    """Threads for torch: ``$DOUBLEEDGE_TORCH_THREADS``, else the cores nobody else is using.

    torch's threads wait for each other at every operation, so one thread preempted by other
    work stalls them all: on a 2-core machine busy with other work, two threads measured 10x
    slower per token than one, while on an idle one two threads scanned Lab 01 in 90 s
    against 119 s with one (bench/README.md). So the engine takes the cores that the last
    minute's load average leaves idle, and at least one.
    """
    if value := os.environ.get("DOUBLEEDGE_TORCH_THREADS"):
        return max(1, int(value))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


@dataclass
class Request:
    prefix: tuple[int, ...]
    suffix: list[int]
    max_new_tokens: int
    tokens: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    seen: dict[tuple[int, ...], set[int]] = field(default_factory=dict)  # (n-1)-gram -> next tokens


class SlotLayer(DynamicLayer):
    """One layer's view of the batch buffers: ``update`` writes the new token's keys and
    values in place at column ``batch.length`` and returns the filled part."""

    def __init__(self, batch: Batch, index: int) -> None:
        super().__init__()
        self.batch, self.index = batch, index
        self.keys, self.values = batch.keys[index][:, :, : batch.length], batch.values[index][:, :, : batch.length]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.batch.length + key_states.shape[-2]
        self.batch.keys[self.index][:, :, self.batch.length : end] = key_states
        self.batch.values[self.index][:, :, self.batch.length : end] = value_states
        self.keys = self.batch.keys[self.index][:, :, :end]
        self.values = self.batch.values[self.index][:, :, :end]
        return self.keys, self.values


class Batch:
    """Keys and values of the rows being decoded, ``[rows, heads, slots, head_dim]`` per layer,
    with ``valid[row, slot]`` marking the slots that belong to the row."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.valid = torch.zeros(0, 0, dtype=torch.bool)
        self.length = 0  # slots in use (the same for every row; unused ones are masked)
        self.positions: list[int] = []  # each row's next position
        self.requests: list[Request] = []

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    def cache(self) -> Cache:
        return Cache(layers=[SlotLayer(self, i) for i in range(len(self.keys))])

    def add(self, request: Request, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Append a prefilled row (its keys/values ``[1, heads, n, head_dim]`` per layer)."""
        n = keys[0].shape[-2]
        self.length = max(self.length, n)
        self._reserve(len(self) + 1, self.length + 1)
        row = len(self)
        for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
            self.keys[layer][row, :, :n] = k[0]
            self.values[layer][row, :, :n] = v[0]
        self.valid[row] = False
        self.valid[row, :n] = True
        self.positions.append(n)
        self.requests.append(request)

    def drop(self, rows: list[int]) -> None:
        keep = [r for r in range(len(self)) if r not in rows]
        index = torch.tensor(keep, dtype=torch.long)
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.valid = self.valid.index_select(0, index)
        self.positions = [self.positions[r] for r in keep]
        self.requests = [self.requests[r] for r in keep]
        if keep:
            self._compact()
        else:
            self.length = 0  # an empty batch starts again at slot 0

    def _compact(self) -> None:
        """Move each row's slots to the front when most slots are holes left by finished rows."""
        used = int(self.valid.sum(dim=1).max())
        if used * 2 > self.length:
            return
        order = torch.argsort((~self.valid[:, : self.length]).to(torch.int8), dim=1, stable=True)[:, :used]
        gather = order[:, None, :, None]
        for layer in range(len(self.keys)):
            k, v = self.keys[layer], self.values[layer]
            shape = (k.shape[0], k.shape[1], used, k.shape[3])
            k[:, :, :used] = k[:, :, : self.length].gather(2, gather.expand(shape))
            v[:, :, :used] = v[:, :, : self.length].gather(2, gather.expand(shape))
        self.valid[:, :used] = self.valid[:, : self.length].gather(1, order)
        self.valid[:, used:] = False
        self.length = used

    def _reserve(self, rows: int, slots: int) -> None:
        if self.keys and rows <= self.keys[0].shape[0] and slots <= self.capacity:
            return
        old_rows = self.keys[0].shape[0] if self.keys else 0
        capacity = max(self.capacity, slots + GROW) if slots > self.capacity else self.capacity
        new_rows = max(rows, old_rows)
        valid = torch.zeros(new_rows, capacity, dtype=torch.bool)
        valid[:old_rows, : self.capacity] = self.valid
        self.valid = valid
        self.keys = [_grown(k, new_rows, capacity) for k in self.keys] if self.keys else []
        self.values = [_grown(v, new_rows, capacity) for v in self.values] if self.values else []

    def ensure_layers(self, shapes: list[tuple[int, int, torch.dtype]]) -> None:
        """Allocate the buffers on the first row (heads, head_dim, dtype per layer)."""
        if self.keys:
            return
        self.keys = [torch.zeros(0, h, 0, d, dtype=t) for h, d, t in shapes]
        self.values = [torch.zeros(0, h, 0, d, dtype=t) for h, d, t in shapes]


def _grown(tensor: torch.Tensor, rows: int, capacity: int) -> torch.Tensor:
    bigger = tensor.new_zeros(rows, tensor.shape[1], capacity, tensor.shape[3])
    bigger[: tensor.shape[0], :, : tensor.shape[2]] = tensor
    return bigger


class Engine:
    """Serves ``generate`` calls from any thread with one worker thread and one model."""

    def __init__(self, model: Any, *, stop_ids: Sequence[int], stop_text: Any = None) -> None:
        self.model = model
        self.stop_ids = frozenset(stop_ids)
        self.stop_text = stop_text  # tokens -> bool: True when the reply has reached a stop string
        self.prefixes: OrderedDict[tuple[int, ...], tuple[list[torch.Tensor], list[torch.Tensor]]] = OrderedDict()
        self.inbox: queue.Queue[Request] = queue.Queue()
        self.batch = Batch()
        self.worker = threading.Thread(target=self._run, name="doubleedge-engine", daemon=True)
        self.worker.start()

    def generate(self, prefix: Sequence[int], suffix: Sequence[int], max_new_tokens: int) -> list[int]:
        """The greedy reply's token ids to ``prefix + suffix`` (``suffix`` must not be empty)."""
        request = Request(tuple(prefix), list(suffix), max_new_tokens)
        self.inbox.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.tokens

    def _run(self) -> None:
        torch.set_num_threads(torch_threads())
        while True:
            try:
                with torch.inference_mode():
                    self._admit(wait=not len(self.batch))
                    if len(self.batch):
                        self._step()
            except BaseException as exc:  # fail every waiting request, never the thread
                for request in self.batch.requests:
                    request.error = exc
                    request.done.set()
                self.batch = Batch()

    def _admit(self, *, wait: bool) -> None:
        """Prefill the requests waiting, up to a full batch (sleeping for the first if idle)."""
        while len(self.batch) < MAX_BATCH:
            try:
                request = self.inbox.get(block=wait)
            except queue.Empty:
                return
            wait = False
            try:
                self._prefill(request)
            except Exception as exc:
                request.error = exc
                request.done.set()

    def _prefill(self, request: Request) -> None:
        keys, values = self._prefix(request.prefix)
        start = len(request.prefix)
        if keys:
            cache = Cache(layers=[_Filled(k, v) for k, v in zip(keys, values, strict=True)])
        else:
            cache = Cache(layer_class_to_replicate=DynamicLayer)
        out = self._forward(request.suffix, cache, start)
        first = self._choose(request, out.logits[0, -1])
        layers = cache.layers
        self.batch.ensure_layers([(layer.keys.shape[1], layer.keys.shape[3], layer.keys.dtype) for layer in layers])
        self.batch.add(request, [layer.keys for layer in layers], [layer.values for layer in layers])
        if self._finished(request, first):
            self.batch.drop([len(self.batch) - 1])

    def _prefix(self, prefix: tuple[int, ...]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The keys and values of ``prefix`` (empty lists for no prefix), computed once."""
        if not prefix:
            return [], []
        if prefix in self.prefixes:
            self.prefixes.move_to_end(prefix)
            return self.prefixes[prefix]
        cache = Cache(layer_class_to_replicate=DynamicLayer)
        self._forward(list(prefix), cache, 0)
        entry = [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers]
        self.prefixes[prefix] = entry
        if len(self.prefixes) > PREFIX_ENTRIES:
            self.prefixes.popitem(last=False)
        return entry

    def _forward(self, ids: list[int], cache: Cache, start: int) -> Any:
        positions = torch.arange(start, start + len(ids)).unsqueeze(0)
        return self.model(
            input_ids=torch.tensor([ids]),
            position_ids=positions,
            cache_position=positions[0],
            attention_mask=torch.ones(1, start + len(ids), dtype=torch.long),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )

    def _step(self) -> None:
        """One token for every row, in one forward pass."""
        batch = self.batch
        rows = len(batch)
        last = torch.tensor([[r.tokens[-1]] for r in batch.requests])
        positions = torch.tensor([[p] for p in batch.positions])
        batch._reserve(rows, batch.length + 1)
        batch.valid[:, batch.length] = True
        mask = batch.valid[:, : batch.length + 1].to(torch.long)
        out = self.model(
            input_ids=last,
            position_ids=positions,
            cache_position=torch.tensor([batch.length]),
            attention_mask=mask,
            past_key_values=batch.cache(),
            use_cache=True,
        )
        batch.length += 1
        finished = []
        for row, request in enumerate(batch.requests):
            batch.positions[row] += 1
            if self._finished(request, self._choose(request, out.logits[row, -1])):
                finished.append(row)
        if finished:
            batch.drop(finished)

    def _choose(self, request: Request, logits: torch.Tensor) -> int:
        """The next token: greedy, after the repetition penalty and the repeated-n-gram ban."""
        tokens = request.tokens
        if tokens:
            seen = torch.tensor(sorted(set(tokens)))
            scores = logits[seen]
            logits = logits.clone()
            logits[seen] = torch.where(scores > 0, scores / REPETITION_PENALTY, scores * REPETITION_PENALTY)
            banned = request.seen.get(tuple(tokens[len(tokens) - NO_REPEAT_NGRAM + 1 :]))
            if banned:
                logits[list(banned)] = float("-inf")
        token = int(torch.argmax(logits))
        if len(tokens) >= NO_REPEAT_NGRAM - 1:
            request.seen.setdefault(tuple(tokens[len(tokens) - NO_REPEAT_NGRAM + 1 :]), set()).add(token)
        tokens.append(token)
        return token

    def _finished(self, request: Request, token: int) -> bool:
        tokens = request.tokens
        done = (
            token in self.stop_ids
            or len(tokens) >= request.max_new_tokens
            or (self.stop_text is not None and self.stop_text(tokens))
        )
        if done:
            if token in self.stop_ids:
                tokens.pop()
            request.done.set()
        return done


class _Filled(DynamicLayer):
    """A layer starting from a stored prefix; concatenation makes a copy, so the prefix is kept intact."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.keys, self.values = keys, values
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
