/**
 * Plain words for tool activity: "book_table" → "Book table", arguments as
 * label/value pairs, who decided an approval. Pure functions, no DOM.
 */

/** "book_table" / "bookTable" → "Book table". */
export function humanize(name) {
  const words = String(name ?? '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_\-.]+/g, ' ')
    .trim()
    .toLowerCase();
  return words ? words[0].toUpperCase() + words.slice(1) : '';
}

const toolLabels = new Map();

/** The agent's customer-facing tool labels (``GET /v1/agents`` → ``tool_labels``). */
export function useToolLabels(labels) {
  toolLabels.clear();
  for (const [name, label] of Object.entries(labels || {})) {
    if (label) toolLabels.set(name, String(label));
  }
}

/** A tool as customers read it: its label from the agent file, else its name in words. */
export function toolName(name) {
  return toolLabels.get(name) || humanize(name);
}

/** A value in words: lists joined, objects flattened, booleans as yes/no. */
export function valueInWords(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) return value.map(valueInWords).join(', ');
  if (typeof value === 'object') {
    return Object.entries(value)
      .map(([key, inner]) => `${humanize(key).toLowerCase()} ${valueInWords(inner)}`)
      .join(', ');
  }
  return String(value);
}

/** Arguments object → [[label, value], ...] in the tool's own order. */
export function argumentsInWords(args) {
  if (!args || typeof args !== 'object' || Array.isArray(args)) {
    return args === undefined || args === null ? [] : [['Details', valueInWords(args)]];
  }
  return Object.entries(args).map(([key, value]) => [humanize(key), valueInWords(value)]);
}

/** One line summary, e.g. "Book table — name Ann, party size 2". */
export function toolSummary(name, args) {
  const parts = argumentsInWords(args).map(([label, value]) => `${label.toLowerCase()} ${value}`);
  return parts.length ? `${toolName(name)} — ${parts.join(', ')}` : toolName(name);
}

const DECIDERS = {
  voice: 'by voice',
  click: 'by click',
  chat: 'by click',
  http: 'by click',
  web: 'by click',
  user: 'by you',
  user_message: 'because you sent a new message',
  operator: 'by an operator',
  system: 'automatically',
};

/** "approved" + "voice" → "Approved by voice". */
export function decisionInWords(status, decidedBy) {
  const verb = status === 'approved' ? 'Approved' : status === 'denied' ? 'Denied' : 'Waiting';
  if (!decidedBy || status === 'pending') return verb;
  const who = DECIDERS[String(decidedBy).toLowerCase()] || `by ${decidedBy}`;
  return `${verb} ${who}`;
}

const TOOL_STATUS = {
  running: 'Running',
  waiting: 'Waiting for approval:',
  ok: 'Done:',
  error: 'Failed:',
  denied: 'Not done (denied):',
};

/** "Running Check availability…" / "Done: Check availability". */
export function toolActivity(name, status) {
  const label = toolName(name);
  if (status === 'running') return `Running ${label.toLowerCase()}…`;
  return `${TOOL_STATUS[status] || humanize(status)} ${label.toLowerCase()}`;
}
