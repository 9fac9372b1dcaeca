// The viewer's choices, kept in this browser: the time zone every time is shown in, and how often pages refresh.

const ZONE_KEY = "fnscope.zone";
const REFRESH_KEY = "fnscope.refresh";

export const ZONES = { utc: "UTC", local: "local time" };
export const REFRESHES = { 0: "off", 10: "10 s", 30: "30 s", 60: "1 min", 300: "5 min" };
const DEFAULT_REFRESH = 30;

export function zone() {
  return localStorage.getItem(ZONE_KEY) === "local" ? "local" : "utc";
}

export function setZone(value) {
  localStorage.setItem(ZONE_KEY, value === "local" ? "local" : "utc");
}

// The zone's short name as a column heading shows it: "UTC", or the browser's offset ("UTC+2").
export function zoneLabel() {
  if (zone() === "utc") return "UTC";
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `UTC${sign}${Math.floor(abs / 60)}${abs % 60 ? `:${String(abs % 60).padStart(2, "0")}` : ""}`;
}

export function refreshSeconds() {
  const stored = localStorage.getItem(REFRESH_KEY);
  return stored !== null && stored in REFRESHES ? Number(stored) : DEFAULT_REFRESH;
}

export function setRefreshSeconds(value) {
  localStorage.setItem(REFRESH_KEY, String(value));
}
