// The shell: skip link, navigation bar, health banner and the page for the current route.

import { useEffect, useRef } from 'react';
import { HealthBanner } from './components/HealthBanner';
import { DemoPage } from './pages/DemoPage';
import { ModelsPage } from './pages/ModelsPage';
import { MonitoringPage } from './pages/MonitoringPage';
import { ReviewPage } from './pages/ReviewPage';
import { TrainingPage } from './pages/TrainingPage';
import { UploadDetailPage } from './pages/UploadDetailPage';
import { UploadPage } from './pages/UploadPage';
import { useRoute, type Route } from './router';

const NAV = [
  { href: '#/upload', label: 'Upload', match: (r: Route) => r.parts.length === 0 || r.parts[0] === 'upload' || r.parts[0] === 'uploads' },
  { href: '#/demo', label: 'Demo', match: (r: Route) => r.parts[0] === 'demo' },
  { href: '#/models', label: 'Models', match: (r: Route) => r.parts[0] === 'models' },
  { href: '#/training', label: 'Training', match: (r: Route) => r.parts[0] === 'training' },
  { href: '#/monitoring', label: 'Monitoring', match: (r: Route) => r.parts[0] === 'monitoring' },
  { href: '#/review', label: 'Review', match: (r: Route) => r.parts[0] === 'review' },
];

function Page({ route }: { route: Route }) {
  const [first, second, third] = route.parts;
  switch (first) {
    case undefined:
    case 'upload':
      return <UploadPage />;
    case 'uploads':
      return second ? <UploadDetailPage id={second} /> : <UploadPage />;
    case 'demo':
      return <DemoPage />;
    case 'models':
      return <ModelsPage selected={route.query.get('v') ?? undefined} />;
    case 'training':
      return <TrainingPage runId={second === 'runs' ? third : undefined} />;
    case 'monitoring':
      return <MonitoringPage />;
    case 'review':
      return <ReviewPage />;
    default:
      return (
        <section>
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <a href="#/upload">Go to uploads</a>.
          </p>
        </section>
      );
  }
}

export function App() {
  const route = useRoute();
  const mainRef = useRef<HTMLElement>(null);
  const firstRender = useRef(true);
  const section = NAV.find((n) => n.match(route));

  useEffect(() => {
    document.title = `${section?.label ?? 'Not found'} · Fraud detection`;
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    // Move focus to the new page so keyboard and screen-reader users land on its content.
    mainRef.current?.focus();
    window.scrollTo?.(0, 0);
  }, [route.path, section?.label]);

  return (
    <>
      <a className="skip-link" href="#main" onClick={(e) => {
        e.preventDefault();
        mainRef.current?.focus();
      }}>
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="#/upload">
          <span aria-hidden="true">◆</span> Fraud detection
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={n === section ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <HealthBanner />
      <main id="main" ref={mainRef} tabIndex={-1}>
        <Page route={route} />
      </main>
    </>
  );
}
