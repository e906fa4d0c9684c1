// React contexts: the API client and admin-token handling (prompt on 401, then retry).

import { createContext, useCallback, useContext, useMemo, useRef, useState, type ReactNode } from 'react';
import { ApiClient, ApiError } from './client';
import { loadToken, saveToken } from './token';
import { TokenDialog } from '../components/TokenDialog';

const ApiContext = createContext<ApiClient | null>(null);

export interface AuthApi {
  /**
   * Runs an admin call; when it fails with 401/403 asks for the token, stores it in
   * sessionStorage and retries. Rejects with the last error when the user cancels.
   */
  withAuth: <T>(call: () => Promise<T>) => Promise<T>;
  hasToken: () => boolean;
  forgetToken: () => void;
}

const AuthContext = createContext<AuthApi | null>(null);

interface Pending {
  message: string;
  resolve: (token: string | null) => void;
}

export function ApiProvider({ client, children }: { client?: ApiClient; children: ReactNode }) {
  const tokenRef = useRef<string | null>(loadToken());
  const api = useMemo(
    () => client ?? new ApiClient({ getToken: () => tokenRef.current ?? loadToken() }),
    [client],
  );
  const [pending, setPending] = useState<Pending | null>(null);

  const ask = useCallback(
    (message: string) =>
      new Promise<string | null>((resolve) => {
        setPending({ message, resolve });
      }),
    [],
  );

  const withAuth = useCallback(
    async <T,>(call: () => Promise<T>): Promise<T> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await call();
        } catch (err) {
          const denied = err instanceof ApiError && (err.unauthenticated || err.status === 403);
          if (!denied) throw err;
          const message =
            attempt === 0 && !tokenRef.current && !loadToken()
              ? 'This action needs the admin token (printed by `./fraud up`).'
              : 'The server rejected the token. Enter the admin token again.';
          const token = await ask(message);
          if (!token) throw err;
          tokenRef.current = token;
          saveToken(token);
        }
      }
    },
    [ask],
  );

  const auth = useMemo<AuthApi>(
    () => ({
      withAuth,
      hasToken: () => !!(tokenRef.current ?? loadToken()),
      forgetToken: () => {
        tokenRef.current = null;
        saveToken(null);
      },
    }),
    [withAuth],
  );

  const close = (token: string | null) => {
    pending?.resolve(token);
    setPending(null);
  };

  return (
    <ApiContext.Provider value={api}>
      <AuthContext.Provider value={auth}>
        {children}
        {pending && <TokenDialog message={pending.message} onSubmit={(t) => close(t)} onCancel={() => close(null)} />}
      </AuthContext.Provider>
    </ApiContext.Provider>
  );
}

export function useApi(): ApiClient {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi outside ApiProvider');
  return api;
}

export function useAuth(): AuthApi {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error('useAuth outside ApiProvider');
  return auth;
}
