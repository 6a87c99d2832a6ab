"""Lab 05's reference solution: least privilege, allow-lists, argument checks, a human in the loop,
and budgets on every loop.

The lab notebook's solution cells hold the same code (a test keeps them in sync).
Graded learner code may not import this module.
"""

from dataclasses import replace

from doubleedge.guards import DEFAULT_PATTERNS, DOCUMENT_PATTERNS, InjectionHeuristics, MaxLength
from doubleedge.target.agent import AgentDefense, Budget, Decision, Shop, ToolCall


def tool_policy(call: ToolCall, customer: str, shop: Shop) -> Decision:
    """Decide each call on its own merits: the model's intent is never evidence."""
    order = shop.orders.get(str(call.args.get("order_id", "")))
    if call.tool == "lookup_order":
        if order is None or order.customer != customer:
            return Decision("deny", "customers can only see their own orders")
        return Decision("allow")
    if call.tool == "issue_refund":
        if order is None or order.customer != customer:
            return Decision("deny", "customers can only be refunded for their own orders")
        amount = call.args.get("amount")
        if amount is not None and not 0 < float(amount) <= order.amount:
            return Decision("deny", "a refund cannot exceed what the order cost")
        return Decision("confirm", "refunds are confirmed by a person")
    if call.tool == "send_email":
        if call.args.get("to") != shop.emails.get(customer):
            return Decision("deny", "email only goes to the customer's own address")
        return Decision("allow")
    return Decision("deny", f"{call.tool} is not something the assistant may do")


def build_agent_defense() -> AgentDefense:
    """No account deletion at all, checked calls, and a first filter on what the agent reads."""
    return AgentDefense(
        name="lab05",
        policy=tool_policy,
        tools=("lookup_order", "issue_refund", "send_email"),
        input_guards=[MaxLength(2000), InjectionHeuristics({**DEFAULT_PATTERNS, **DOCUMENT_PATTERNS})],
    )


def build_budgeted_defense() -> AgentDefense:
    """The defense above with a budget on each resource: no request, however it is worded, costs more."""
    budget = Budget(max_tool_calls=3, max_reply_chars=1000, max_input_chars=4000, max_requests=5, window_seconds=60)
    return replace(build_agent_defense(), name="lab05-budgets", budget=budget)
