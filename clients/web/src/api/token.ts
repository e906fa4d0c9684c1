// The admin bearer token, remembered for the browser tab (sessionStorage) only.

const KEY = 'fraud.adminToken';

export function loadToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function saveToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the token lives for this page only (the caller keeps it in memory).
  }
}
