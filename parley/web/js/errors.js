/**
 * Errors in words: an `ApiError` (or anything thrown) → `{text, code}` for a toast,
 * plus whether it means the session is over (410).
 */

import { ApiError } from './api.js';

const BUSY = {
  session_busy: 'The agent is still answering — wait a moment and try again.',
  wrong_channel: 'This conversation is in a voice call right now. Use the mic, or end voice first.',
  already_started: 'This conversation has already started.',
};

export function explain(err) {
  if (!(err instanceof ApiError)) {
    return { text: `Something went wrong in the page: ${err?.message || err}`, code: 'client_error' };
  }
  const { status, code, message } = err;
  switch (status) {
    case 0:
      return { text: message, code };
    case 401:
    case 403:
      return { text: 'The server did not accept this conversation’s access token.', code };
    case 404:
      return { text: message || 'Not found.', code };
    case 409:
      return { text: BUSY[code] || message, code };
    case 410:
      return { text: 'This conversation has ended. Start a new one to keep talking.', code };
    case 413:
      return { text: 'That message is too long.', code };
    case 422:
      return { text: `The server did not accept that: ${message}`, code };
    case 429: {
      const wait = err.retryAfter ? ` in ${err.retryAfter} s` : ' in a moment';
      return { text: `Too many requests — please try again${wait}.`, code: code || 'rate_limited' };
    }
    default:
      return { text: `The server had a problem (${status}): ${message}`, code };
  }
}

export function isSessionGone(err) {
  return err instanceof ApiError && err.status === 410;
}

export function isAccessLost(err) {
  return err instanceof ApiError && [401, 403, 404].includes(err.status);
}

const END_REASONS = {
  USER_ENDED: 'This conversation has ended.',
  OPERATOR_ENDED: 'An operator ended this conversation.',
  TIME_LIMIT: 'This conversation reached its time limit and has ended.',
  DISCONNECTED: 'This conversation ended after the connection was lost.',
  SERVER_SHUTDOWN: 'This conversation ended because the server is shutting down.',
  ERROR: 'This conversation ended because of an error.',
};

export function endedInWords(reason, detail) {
  const base = END_REASONS[reason] || 'This conversation has ended.';
  return detail ? `${base} (${detail})` : base;
}
