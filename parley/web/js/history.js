/**
 * Stored history (`GET /v1/sessions/{id}/messages`) → the items the transcript shows.
 *
 * Pure: messages with content blocks in, a flat list of view items out, in order:
 *   {kind: 'user', text, channel}
 *   {kind: 'assistant', text, channel, interrupted}
 *   {kind: 'tool', toolCallId, name, arguments, status: running|waiting|ok|error|denied}
 *   {kind: 'approval', toolCallId, name, arguments, prompt, status, decidedBy, toolStatus?}
 *   {kind: 'carousel', op}
 *   {kind: 'note', text}
 * A tool call marked `requires_approval` opens an approval card (pending until an
 * `approval` block decides it); a later result updates its item in place; several approval blocks for one
 * tool call merge into one card (the last status wins), and a tool behind an approval is
 * folded into its card, so a reload rebuilds the cards exactly as they ended — pending
 * ones stay decidable.
 */

function blocksOf(message) {
  return Array.isArray(message.blocks) ? message.blocks : [];
}

function userText(message) {
  if (message.text) return message.text;
  const action = blocksOf(message).find((b) => b.type === 'ui_action');
  return action ? action.display || action.msg || '' : '';
}

export function historyToItems(messages) {
  const items = [];
  const tools = new Map(); // tool_call_id → tool item
  const approvals = new Map(); // tool_call_id → approval item
  const calls = new Map(); // tool_call_id → {name, arguments}

  const approvalItem = (block) => {
    const id = block.tool_call_id;
    const call = calls.get(id) || {};
    let item = approvals.get(id);
    if (!item) {
      item = { kind: 'approval', toolCallId: id, name: block.name || call.name || 'tool' };
      item.arguments = block.arguments || call.arguments || {};
      item.prompt = block.prompt || '';
      item.status = 'pending';
      item.decidedBy = null;
      approvals.set(id, item);
      items.push(item);
    }
    if (block.status) item.status = block.status;
    if (block.decided_by) item.decidedBy = block.decided_by;
  };

  for (const message of messages || []) {
    const blocks = blocksOf(message);
    if (message.role === 'user') {
      const text = userText(message);
      if (text) items.push({ kind: 'user', text, channel: message.channel || 'chat' });
    } else if (message.role === 'assistant' && message.text) {
      items.push({
        kind: 'assistant',
        text: message.text,
        channel: message.channel || 'chat',
        interrupted: Boolean(message.interrupted),
      });
    } else if (message.role === 'system' && message.text) {
      items.push({ kind: 'note', text: message.text });
    }
    for (const block of blocks) {
      if (block.type === 'tool_call') {
        calls.set(block.id, { name: block.name, arguments: block.arguments || {} });
        if (block.requires_approval && !approvals.has(block.id)) {
          approvalItem({ tool_call_id: block.id, prompt: block.prompt, status: 'pending' });
        }
        const item = {
          kind: 'tool',
          toolCallId: block.id,
          name: block.name,
          arguments: block.arguments || {},
          status: 'running',
        };
        tools.set(block.id, item);
        items.push(item);
      } else if (block.type === 'tool_result') {
        const item = tools.get(block.tool_call_id);
        if (item) item.status = block.status || 'ok';
      } else if (block.type === 'ui_op' && block.op) {
        items.push({ kind: 'carousel', op: block.op });
      } else if (block.type === 'approval') {
        approvalItem(block);
      }
    }
  }
  // A tool call with no result is waiting for a decision, was denied, or was cut off.
  const leftover = { pending: 'waiting', denied: 'denied' };
  for (const item of tools.values()) {
    if (item.status !== 'running') continue;
    item.status = leftover[approvals.get(item.toolCallId)?.status] || 'error';
  }
  // A tool behind an approval is shown by its card alone, which carries the tool's outcome.
  for (const [id, approval] of approvals) {
    const tool = tools.get(id);
    if (tool && tool.status !== 'waiting') approval.toolStatus = tool.status;
  }
  return items.filter((item) => !(item.kind === 'tool' && approvals.has(item.toolCallId)));
}

/** The approval items still waiting for a decision. */
export function pendingApprovals(items) {
  return items.filter((item) => item.kind === 'approval' && item.status === 'pending');
}
