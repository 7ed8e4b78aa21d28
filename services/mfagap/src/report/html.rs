//! `mfagap report --format html`: the report as one page that a security lead reads.
//!
//! One self-contained HTML file: inline CSS, SVG drawn here, and a small inline script that
//! sorts the users' table. Nothing is fetched — no fonts, scripts, images or styles — and the
//! page's Content-Security-Policy forbids it. For the window, the page shows:
//!
//! - the totals: sign-ins, distinct users, distinct apps, the first and last sign-in, and the
//!   sign-ins of each reason;
//! - the trend: sign-ins per day (UTC) stacked by reason, as SVG bars (one bar per several
//!   days when the sign-ins span more than [`MAX_BARS`] days);
//! - the top [`TOP`] users, apps (`appDisplayName`), legacy clients (`clientAppUsed` of the
//!   `legacy_protocol` sign-ins) and MFA policies that did not apply (`mfaPoliciesNotApplied`);
//! - every user as `--by-user` lists them, in a table that a click on a heading sorts.
//!
//! The numbers are the CSV report's: the page is built from the same rows ([`Dataset::scan`]:
//! the same window, the same deduplication), and the users' table from the same [`Users`] as
//! `--by-user`. "Users" counts the distinct `userPrincipalName`s; the sign-ins without one are
//! the `--by-user` row with the empty name, counted apart.
//!
//! Every value is escaped, in text and attributes alike, and line breaks become character
//! references, so each table row is one line of the file. The page holds no clock time: the
//! same dataset and window give the same bytes.
//!
//! Elements carry their numbers in data attributes, for the tests and for anyone who scripts
//! the page: `data-stat` and `data-n` on the totals; `data-day`, `data-reason` and `data-n` on
//! each bar (`<rect class="bar …">`); `data-key` and `data-n` on the rows of the top lists;
//! `data-user` on the rows of the users' table and `data-sort` on its cells that are not text.
//! `#sort=COLUMN` or `#sort=COLUMN-asc|-desc` at the end of the address sorts the users' table
//! when the page opens (the columns' names are the `data-key`s of its headings; README.md,
//! `mfagap report`).

use super::{Dataset, Row, User, Users, Window};
use anyhow::Result;
use mfagap_core::Reason;
use mfagap_core::timestamp::{self, Micros};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::io::Write;

/// How many entries each top list shows.
pub(crate) const TOP: usize = 10;

/// Most bars in the trend: a longer span puts several days in one bar.
pub(crate) const MAX_BARS: i64 = 180;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What the page knows of one MFA policy that did not apply.
#[derive(Debug, Default)]
struct Policy {
    /// Sign-ins it did not apply to (a sign-in counts once even when it names it twice).
    sign_ins: u64,
    /// How it did not apply (`notApplied`, `reportOnlySuccess`, …), per occurrence.
    results: BTreeMap<String, u64>,
}

/// The page's numbers, summed up from the report's rows.
#[derive(Debug, Default)]
struct Summary {
    sign_ins: u64,
    first: Option<Micros>,
    last: Option<Micros>,
    reasons: BTreeMap<String, u64>,
    /// Sign-ins per UTC day (days since 1970-01-01) and reason.
    days: BTreeMap<i64, BTreeMap<String, u64>>,
    apps: HashMap<String, u64>,
    legacy_clients: HashMap<String, u64>,
    policies: HashMap<String, Policy>,
    users: Users,
}

impl Summary {
    fn add(&mut self, r: &Row) {
        self.sign_ins += 1;
        self.first = Some(self.first.map_or(r.created, |t| t.min(r.created)));
        self.last = Some(self.last.map_or(r.created, |t| t.max(r.created)));
        count(&mut self.reasons, &r.reason);
        let day = r.created.div_euclid(MICROS_PER_DAY);
        count(self.days.entry(day).or_default(), &r.reason);
        if let Some(app) = &r.app_display_name {
            count(&mut self.apps, app);
        }
        if r.reason == Reason::LegacyProtocol.as_str()
            && let Some(client) = &r.client_app_used
        {
            count(&mut self.legacy_clients, client);
        }
        let mut seen = BTreeSet::new();
        for (name, result) in &r.mfa_policies_not_applied {
            if name.is_empty() {
                continue;
            }
            let p = self.policies.entry(name.clone()).or_default();
            if seen.insert(name.as_str()) {
                p.sign_ins += 1;
            }
            count(&mut p.results, result);
        }
        self.users.add(r);
    }
}

/// Adds one to `key`'s count.
fn count<M: Counts>(map: &mut M, key: &str) {
    *map.slot(key) += 1;
}

/// The two maps [`count`] counts in.
trait Counts {
    fn slot(&mut self, key: &str) -> &mut u64;
}

impl Counts for BTreeMap<String, u64> {
    fn slot(&mut self, key: &str) -> &mut u64 {
        if !self.contains_key(key) {
            self.insert(key.to_owned(), 0);
        }
        self.get_mut(key).expect("the key was just inserted")
    }
}

impl Counts for HashMap<String, u64> {
    fn slot(&mut self, key: &str) -> &mut u64 {
        if !self.contains_key(key) {
            self.insert(key.to_owned(), 0);
        }
        self.get_mut(key).expect("the key was just inserted")
    }
}

/// Writes the page of `window` to `out`; returns the number of sign-ins it covers.
pub(crate) fn write(dataset: &Dataset, window: Window, out: &mut impl Write) -> Result<u64> {
    let mut summary = Summary::default();
    dataset.scan(window, |r| {
        summary.add(r);
        Ok(())
    })?;
    let sign_ins = summary.sign_ins;
    render(summary, window, out)?;
    Ok(sign_ins)
}

/// Text for HTML, in an element or in a quoted attribute: `& < > " '` as references, line
/// breaks and tabs as numeric references, other control characters as U+FFFD.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\n' => f.write_str("&#10;")?,
                '\r' => f.write_str("&#13;")?,
                '\t' => f.write_str("&#9;")?,
                c if c.is_control() => f.write_char('\u{FFFD}')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(d);
    }
    s
}

/// `part` of `whole` in percent, one decimal.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0%".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// The UTC date of a day number, as `createdDateTime` begins.
fn day_label(day: i64) -> String {
    let t = timestamp::format(day.saturating_mul(MICROS_PER_DAY));
    match t.split_once('T') {
        Some((date, _)) => date.to_owned(),
        None => format!("day {day}"),
    }
}

/// The reasons in the order the page lists them: this build's, then the others by name.
fn reason_order(reasons: &BTreeMap<String, u64>) -> Vec<String> {
    let known = Reason::ALL.map(Reason::as_str);
    known
        .iter()
        .map(|k| (*k).to_owned())
        .chain(
            reasons
                .keys()
                .filter(|k| !known.contains(&k.as_str()))
                .cloned(),
        )
        .collect()
}

/// What each reason means, for the totals.
fn reason_meaning(reason: &str) -> &'static str {
    if reason == Reason::LegacyProtocol.as_str() {
        "a protocol that cannot do MFA (IMAP, POP, SMTP AUTH, …): block it"
    } else if reason == Reason::MfaSkipped.as_str() {
        "MFA was required but waived (trusted location, remembered device, …): review the exemption"
    } else if reason == Reason::SingleFactor.as_str() {
        "nothing asked for a second factor: a gap in the policies"
    } else {
        "a reason this version of mfagap does not describe"
    }
}

/// The colours of the reasons, by their place in [`reason_order`] (the CSS classes `r0`…).
const PALETTE: [&str; 6] = [
    "#c0392b", "#d68910", "#2e86c1", "#7d3c98", "#229954", "#7f8c8d",
];

fn colour(i: usize) -> (usize, &'static str) {
    let i = i % PALETTE.len();
    (i, PALETTE[i])
}

/// Entries of a count map, most first, then by name; at most `TOP`.
fn top(map: &HashMap<String, u64>) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = map.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.truncate(TOP);
    v
}

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1f2933; --muted: #5f6b7a; --line: #d9dee4; --card: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 6px; }
p { margin: 4px 0; }
.muted, .note { color: var(--muted); }
.window { color: var(--muted); margin-bottom: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .value.time { font-size: 20px; }
.card .value.time .t { display: block; font-size: 13px; font-weight: 400; color: var(--muted); }
.card .note { font-size: 12px; }
.card.reason { border-left-width: 5px; }
.card.reason .label { text-transform: none; letter-spacing: 0; font-size: 13px; font-weight: 600; color: var(--ink); }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.sw.r0, .meter > .r0 { background: #c0392b; } .card.r0 { border-left-color: #c0392b; }
.sw.r1, .meter > .r1 { background: #d68910; } .card.r1 { border-left-color: #d68910; }
.sw.r2, .meter > .r2 { background: #2e86c1; } .card.r2 { border-left-color: #2e86c1; }
.sw.r3, .meter > .r3 { background: #7d3c98; } .card.r3 { border-left-color: #7d3c98; }
.sw.r4, .meter > .r4 { background: #229954; } .card.r4 { border-left-color: #229954; }
.sw.r5, .meter > .r5 { background: #7f8c8d; } .card.r5 { border-left-color: #7f8c8d; }
svg.trend { width: 100%; height: auto; display: block; }
svg.trend text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #3e4c59; }
svg.trend .axis { stroke: #52606d; stroke-width: 1; }
svg.trend .grid { stroke: #e4e7eb; stroke-width: 1; }
svg.trend .total { font-weight: 600; }
.tops { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 20px 28px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: break-word; }
th { font-size: 12px; color: var(--muted); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.none { color: var(--muted); font-style: italic; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
td ul { list-style: none; margin: 0; padding: 0; }
td li { margin: 0 0 2px; }
td.reasons li { white-space: nowrap; }
.scroll { overflow-x: auto; }
.meter { display: inline-flex; width: 120px; height: 10px; background: #eef1f4; border-radius: 2px; overflow: hidden; vertical-align: middle; }
.meter > span { display: block; height: 100%; }
.meter > span.n { background: #52606d; }
table.users { font-size: 13px; }
table.users th, table.users td { padding: 4px 6px; }
table.users th button { all: inherit; cursor: pointer; padding: 0; }
table.users th button::after { content: " \2195"; color: #9aa5b1; }
table.users th[aria-sort="ascending"] button::after { content: " \25B2"; color: var(--ink); }
table.users th[aria-sort="descending"] button::after { content: " \25BC"; color: var(--ink); }
table.users tbody tr:hover { background: #f5f7fa; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print { body { padding: 0; } table.users th button::after { content: ""; } }
"#;

/// Sorts the users' table: a click on a heading sorts by that column (numbers and times
/// first from the most, text from A), a second click turns the order round.
const SCRIPT: &str = r#"
(function () {
  "use strict";
  function value(cell, type) {
    var v = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    return type === "number" ? Number(v) : v;
  }
  function sortBy(table, th, descending) {
    var heads = Array.prototype.slice.call(th.parentNode.children);
    var index = heads.indexOf(th);
    var type = th.getAttribute("data-type");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[index], type), y = value(b.cells[index], type);
      var c = type === "number" ? x - y : (type === "time" ? (x < y ? -1 : x > y ? 1 : 0) : x.localeCompare(y));
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        var descending = now ? now === "ascending" : th.getAttribute("data-type") !== "text";
        sortBy(table, th, descending);
      });
    });
  });
  var m = /^#sort=([a-z]+)(?:-(asc|desc))?$/.exec(window.location.hash);
  if (m) {
    Array.prototype.forEach.call(tables, function (table) {
      var th = table.tHead.querySelector('th[data-key="' + m[1] + '"]');
      if (th) {
        sortBy(table, th, m[2] ? m[2] === "desc" : th.getAttribute("data-type") !== "text");
      }
    });
  }
  document.documentElement.setAttribute("data-script", "ok");
})();
"#;

fn render(summary: Summary, window: Window, out: &mut impl Write) -> Result<()> {
    let Summary {
        sign_ins,
        first,
        last,
        reasons,
        days,
        apps,
        legacy_clients,
        policies,
        users,
    } = summary;
    let users = users.ranked();
    let order = reason_order(&reasons);
    let named_users = users
        .iter()
        .filter(|u| !u.user_principal_name.is_empty())
        .count() as u64;
    let no_user = users
        .iter()
        .find(|u| u.user_principal_name.is_empty())
        .map_or(0, |u| u.sign_ins);

    write!(
        out,
        concat!(
            "<!DOCTYPE html>\n",
            "<html lang=\"en\">\n",
            "<head>\n",
            "<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; ",
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
            "<meta name=\"generator\" content=\"mfagap report\">\n",
            "<title>Sign-ins without MFA — mfagap report</title>\n",
            "<style>{}</style>\n",
            "</head>\n",
            "<body>\n",
            "<main>\n",
            "<h1>Sign-ins that succeeded without MFA</h1>\n",
        ),
        STYLE
    )?;
    let bound = |t: Micros| format!("<time>{}</time>", Esc(&timestamp::format(t)));
    let window_text = match (window.since, window.until) {
        (None, None) => "every sign-in in the dataset".to_owned(),
        (Some(s), None) => format!("sign-ins at or after {}", bound(s)),
        (None, Some(u)) => format!("sign-ins before {}", bound(u)),
        (Some(s), Some(u)) => format!("sign-ins at or after {} and before {}", bound(s), bound(u)),
    };
    writeln!(
        out,
        "<p class=\"window\">Window: {window_text} (UTC). Every sign-in here succeeded with no MFA \
         evidence; the numbers are those of <code>mfagap report</code> for the same window.</p>"
    )?;

    // Totals.
    writeln!(out, "<section id=\"totals\" aria-label=\"Totals\">")?;
    writeln!(out, "<div class=\"cards\">")?;
    let card = |out: &mut dyn Write, label: &str, stat: &str, n: u64, note: &str| {
        writeln!(
            out,
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value\" \
             data-stat=\"{stat}\" data-n=\"{n}\">{}</div>{note}</div>",
            group(n)
        )
    };
    card(out, "Sign-ins", "sign-ins", sign_ins, "")?;
    let no_user_note = if no_user > 0 {
        format!(
            "<div class=\"note\">and <span data-stat=\"no-user-sign-ins\" data-n=\"{no_user}\">{}</span> \
             sign-in{} without a userPrincipalName</div>",
            group(no_user),
            if no_user == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    card(out, "Users", "users", named_users, &no_user_note)?;
    card(out, "Apps", "apps", apps.len() as u64, "")?;
    let instant = |out: &mut dyn Write, label: &str, stat: &str, t: Option<Micros>| match t {
        Some(t) => {
            let t = timestamp::format(t);
            let (date, time) = t.split_once('T').unwrap_or((&t, ""));
            writeln!(
                out,
                "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value time\" \
                 data-stat=\"{stat}\"><time datetime=\"{}\">{} <span class=\"t\">{}</span></time></div></div>",
                Esc(&t),
                Esc(date),
                Esc(time)
            )
        }
        None => writeln!(
            out,
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value time\" \
             data-stat=\"{stat}\">—</div></div>"
        ),
    };
    instant(out, "First sign-in", "first", first)?;
    instant(out, "Last sign-in", "last", last)?;
    writeln!(out, "</div>")?;
    writeln!(out, "<h3 style=\"margin-top:16px\">By reason</h3>")?;
    writeln!(out, "<div class=\"cards\">")?;
    for (i, reason) in order.iter().enumerate() {
        let n = reasons.get(reason).copied().unwrap_or(0);
        let (class, _) = colour(i);
        writeln!(
            out,
            "<div class=\"card reason r{class}\"><div class=\"label\"><i class=\"sw r{class}\"></i>{r}</div>\
             <div class=\"value\" data-stat=\"reason\" data-reason=\"{r}\" data-n=\"{n}\">{}</div>\
             <div class=\"note\">{} of the sign-ins — {}</div></div>",
            group(n),
            percent(n, sign_ins),
            Esc(reason_meaning(reason)),
            r = Esc(reason),
        )?;
    }
    writeln!(out, "</div>")?;
    writeln!(out, "</section>")?;

    // Trend.
    writeln!(out, "<section id=\"trend\">")?;
    trend(out, &days, &order)?;
    writeln!(out, "</section>")?;

    // Top lists.
    writeln!(out, "<h2>Where to look first</h2>")?;
    writeln!(out, "<section id=\"tops\" class=\"tops\">")?;
    top_users(out, &users, &order)?;
    let users_with = |pick: &dyn Fn(&User) -> bool| -> u64 {
        users
            .iter()
            .filter(|u| !u.user_principal_name.is_empty() && pick(u))
            .count() as u64
    };
    let apps_top: Vec<TopRow> = top(&apps)
        .into_iter()
        .map(|(name, n)| TopRow {
            name,
            sign_ins: n,
            users: users_with(&|u| u.apps.contains(name)),
            note: String::new(),
        })
        .collect();
    top_table(
        out,
        "top-apps",
        "Top apps",
        "App (appDisplayName)",
        apps.len(),
        &apps_top,
        None,
        "No sign-in names an app.",
    )?;
    let legacy_top: Vec<TopRow> = top(&legacy_clients)
        .into_iter()
        .map(|(name, n)| TopRow {
            name,
            sign_ins: n,
            users: users_with(&|u| u.legacy_clients.contains(name)),
            note: String::new(),
        })
        .collect();
    top_table(
        out,
        "top-legacy-clients",
        "Top legacy clients",
        "Client (clientAppUsed of legacy_protocol sign-ins)",
        legacy_clients.len(),
        &legacy_top,
        None,
        "No legacy-protocol sign-ins.",
    )?;
    let mut policy_list: Vec<(&str, &Policy)> =
        policies.iter().map(|(k, p)| (k.as_str(), p)).collect();
    policy_list.sort_by(|a, b| b.1.sign_ins.cmp(&a.1.sign_ins).then_with(|| a.0.cmp(b.0)));
    let policies_top: Vec<TopRow> = policy_list
        .iter()
        .take(TOP)
        .map(|&(name, p)| TopRow {
            name,
            sign_ins: p.sign_ins,
            users: users_with(&|u| u.policies_not_applied.contains(name)),
            note: p
                .results
                .iter()
                .map(|(result, n)| format!("{} {}", Esc(result), group(*n)))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    top_table(
        out,
        "top-policies-not-applied",
        "MFA policies that did not apply most often",
        "Policy",
        policies.len(),
        &policies_top,
        Some("How (result)"),
        "No MFA policy is recorded as not applied.",
    )?;
    writeln!(out, "</section>")?;

    // Users.
    users_table(out, &users, &order)?;

    writeln!(
        out,
        "<footer>Written by <code>mfagap report --format html</code> from the Parquet dataset the \
         archiver writes. The users' table is <code>mfagap report --by-user</code>; a click on a \
         heading sorts it. Reasons and columns: README.md, section <code>mfagap report</code>.</footer>"
    )?;
    writeln!(out, "</main>")?;
    writeln!(out, "<script>{SCRIPT}</script>")?;
    writeln!(out, "</body>")?;
    writeln!(out, "</html>")?;
    Ok(())
}

/// Size of the trend chart, in SVG units.
const W: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = W - 16.0;
const PLOT_H: f64 = 220.0;

/// The per-day trend, stacked by reason, as SVG.
fn trend(
    out: &mut impl Write,
    days: &BTreeMap<i64, BTreeMap<String, u64>>,
    order: &[String],
) -> Result<()> {
    let (Some((&first, _)), Some((&last, _))) = (days.first_key_value(), days.last_key_value())
    else {
        writeln!(out, "<h2>Sign-ins per day, by reason</h2>")?;
        writeln!(out, "<p class=\"empty\">No sign-ins in this window.</p>")?;
        return Ok(());
    };
    let span = last - first + 1;
    let per_bar = (span + MAX_BARS - 1) / MAX_BARS;
    let bars = (span + per_bar - 1) / per_bar;
    // Each bar: its first day and its count per reason, in `order`.
    let buckets: Vec<(i64, Vec<u64>)> = (0..bars)
        .map(|b| {
            let start = first + b * per_bar;
            let mut counts = vec![0u64; order.len()];
            for (_, per_reason) in days.range(start..start + per_bar) {
                for (reason, n) in per_reason {
                    if let Some(i) = order.iter().position(|r| r == reason) {
                        counts[i] += n;
                    }
                }
            }
            (start, counts)
        })
        .collect();
    let max = buckets
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let step = nice_step(max);
    let ticks = max.div_ceil(step);
    let y_max = step.saturating_mul(ticks) as f64;

    if per_bar == 1 {
        writeln!(out, "<h2>Sign-ins per day, by reason</h2>")?;
    } else {
        writeln!(out, "<h2>Sign-ins per {per_bar} days, by reason</h2>")?;
        writeln!(
            out,
            "<p class=\"muted\">The sign-ins span {span} days: each bar counts {per_bar} days, from the day under it.</p>"
        )?;
    }

    // The legend, on as many lines as it needs.
    let mut legend = String::new();
    let (mut x, mut line) = (LEFT, 0u32);
    for (i, reason) in order.iter().enumerate() {
        let (class, fill) = colour(i);
        let width = 18.0 + reason.chars().count() as f64 * 7.0 + 24.0;
        if x + width > RIGHT && x > LEFT {
            x = LEFT;
            line += 1;
        }
        let y = 12.0 + f64::from(line) * 20.0;
        let _ = writeln!(
            legend,
            "<rect class=\"key r{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"12\" height=\"12\" fill=\"{fill}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 18.0,
            y + 10.5,
            Esc(reason)
        );
        x += width;
    }
    let top = 12.0 + f64::from(line + 1) * 20.0 + 12.0;
    let bottom = top + PLOT_H;
    let height = bottom + 44.0;
    let plot_w = RIGHT - LEFT;

    writeln!(
        out,
        "<svg class=\"trend\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W:.0} {height:.0}\" \
         role=\"img\" aria-labelledby=\"trend-title\">"
    )?;
    writeln!(
        out,
        "<title id=\"trend-title\">Sign-ins without MFA per day (UTC), stacked by reason, {} to {}</title>",
        day_label(first),
        day_label(last)
    )?;
    write!(out, "{legend}")?;
    // Grid and the y axis's labels.
    for t in 0..=ticks {
        let v = step.saturating_mul(t);
        let y = bottom - v as f64 / y_max * PLOT_H;
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{RIGHT:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            group(v)
        )?;
    }
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{top:.1}\" x2=\"{LEFT:.1}\" y2=\"{bottom:.1}\"/>\
         <line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{bottom:.1}\" x2=\"{RIGHT:.1}\" y2=\"{bottom:.1}\"/>"
    )?;
    writeln!(
        out,
        "<text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">sign-ins</text>",
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    )?;
    writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">day (UTC)</text>",
        (LEFT + RIGHT) / 2.0,
        height - 6.0
    )?;

    let band = plot_w / bars as f64;
    let bar_w = (band * 0.72).clamp(1.0, 56.0);
    let label_every = ((84.0 / band).ceil() as i64).max(1);
    for (b, (start, counts)) in buckets.iter().enumerate() {
        let b = b as i64;
        let centre = LEFT + band * (b as f64 + 0.5);
        let x = centre - bar_w / 2.0;
        let label = if per_bar == 1 {
            day_label(*start)
        } else {
            format!("{} – {}", day_label(*start), day_label(start + per_bar - 1))
        };
        let mut y = bottom;
        for (i, n) in counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let h = *n as f64 / y_max * PLOT_H;
            y -= h;
            let (class, fill) = colour(i);
            writeln!(
                out,
                "<rect class=\"bar r{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" \
                 fill=\"{fill}\" data-day=\"{}\" data-reason=\"{}\" data-n=\"{n}\"><title>{}: {} {}</title></rect>",
                Esc(&day_label(*start)),
                Esc(&order[i]),
                Esc(&label),
                Esc(&order[i]),
                group(*n)
            )?;
        }
        let total: u64 = counts.iter().sum();
        if total > 0 && band >= 24.0 {
            writeln!(
                out,
                "<text class=\"total\" x=\"{centre:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                y - 4.0,
                group(total)
            )?;
        }
        if b % label_every == 0 {
            writeln!(
                out,
                "<text x=\"{centre:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                bottom + 16.0,
                Esc(&day_label(*start))
            )?;
        }
    }
    writeln!(out, "</svg>")?;
    Ok(())
}

/// The step of the y axis: 1, 2 or 5 times a power of ten, at most five steps to `max`.
fn nice_step(max: u64) -> u64 {
    let mut power: u64 = 1;
    loop {
        for m in [1, 2, 5] {
            let step = power.saturating_mul(m);
            if max.div_ceil(step) <= 5 {
                return step;
            }
        }
        power = match power.checked_mul(10) {
            Some(p) => p,
            None => return u64::MAX,
        };
    }
}

/// A bar of `n` out of `max`, split by reason when `parts` are given.
fn meter(n: u64, max: u64, parts: &[(usize, u64)]) -> String {
    let max = max.max(1) as f64;
    let mut s = String::from("<span class=\"meter\" aria-hidden=\"true\">");
    if parts.is_empty() {
        let _ = write!(
            s,
            "<span class=\"n\" style=\"width:{:.1}%\"></span>",
            n as f64 * 100.0 / max
        );
    } else {
        for (i, part) in parts {
            if *part > 0 {
                let (class, _) = colour(*i);
                let _ = write!(
                    s,
                    "<span class=\"r{class}\" style=\"width:{:.1}%\"></span>",
                    *part as f64 * 100.0 / max
                );
            }
        }
    }
    s.push_str("</span>");
    s
}

/// A cell of text, `(none)` in grey when empty.
fn text_cell(s: &str) -> String {
    if s.is_empty() {
        "<td class=\"none\" data-sort=\"\">(none)</td>".to_owned()
    } else {
        format!("<td>{}</td>", Esc(s))
    }
}

/// The reasons of a user, in `order`, with their counts.
fn user_reasons(u: &User, order: &[String]) -> Vec<(usize, String, u64)> {
    order
        .iter()
        .enumerate()
        .filter_map(|(i, r)| u.reasons.get(r).map(|n| (i, r.clone(), *n)))
        .collect()
}

fn top_users(out: &mut impl Write, users: &[User], order: &[String]) -> Result<()> {
    writeln!(out, "<div>")?;
    writeln!(out, "<h3>Top users</h3>")?;
    if users.is_empty() {
        writeln!(out, "<p class=\"empty\">No users.</p>")?;
        writeln!(out, "</div>")?;
        return Ok(());
    }
    if users.len() > TOP {
        writeln!(
            out,
            "<p class=\"muted\">{TOP} of {} users, by sign-ins.</p>",
            group(users.len() as u64)
        )?;
    }
    let max = users.first().map_or(1, |u| u.sign_ins);
    writeln!(out, "<table class=\"top\" id=\"top-users\">")?;
    writeln!(
        out,
        "<thead><tr><th>User</th><th>Display name</th><th class=\"num\">Sign-ins</th><th>By reason</th></tr></thead>"
    )?;
    writeln!(out, "<tbody>")?;
    for u in users.iter().take(TOP) {
        let reasons = user_reasons(u, order);
        let parts: Vec<(usize, u64)> = reasons.iter().map(|(i, _, n)| (*i, *n)).collect();
        let title = reasons
            .iter()
            .map(|(_, r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "<tr data-key=\"{}\" data-n=\"{}\">{}{}<td class=\"num\">{}</td><td title=\"{}\">{}</td></tr>",
            Esc(&u.user_principal_name),
            u.sign_ins,
            text_cell(&u.user_principal_name),
            text_cell(u.user_display_name.as_deref().unwrap_or("")),
            group(u.sign_ins),
            Esc(&title),
            meter(u.sign_ins, max, &parts)
        )?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</div>")?;
    Ok(())
}

/// One row of a top list.
struct TopRow<'a> {
    name: &'a str,
    sign_ins: u64,
    /// Distinct users with a `userPrincipalName`.
    users: u64,
    /// HTML, escaped already: the extra column, when the table has one.
    note: String,
}

#[allow(clippy::too_many_arguments)]
fn top_table(
    out: &mut impl Write,
    id: &str,
    title: &str,
    what: &str,
    all: usize,
    rows: &[TopRow<'_>],
    extra: Option<&str>,
    empty: &str,
) -> Result<()> {
    writeln!(out, "<div>")?;
    writeln!(out, "<h3>{}</h3>", Esc(title))?;
    if rows.is_empty() {
        writeln!(out, "<p class=\"empty\">{}</p>", Esc(empty))?;
        writeln!(out, "</div>")?;
        return Ok(());
    }
    if all > rows.len() {
        writeln!(
            out,
            "<p class=\"muted\">{} of {}, by sign-ins.</p>",
            rows.len(),
            group(all as u64)
        )?;
    }
    let max = rows.first().map_or(1, |r| r.sign_ins);
    writeln!(out, "<table class=\"top\" id=\"{}\">", Esc(id))?;
    write!(
        out,
        "<thead><tr><th>{}</th><th class=\"num\">Sign-ins</th><th class=\"num\">Users</th>",
        Esc(what)
    )?;
    match extra {
        Some(h) => writeln!(out, "<th>{}</th></tr></thead>", Esc(h))?,
        None => writeln!(out, "<th></th></tr></thead>")?,
    }
    writeln!(out, "<tbody>")?;
    for r in rows {
        let last = match extra {
            Some(_) => format!("<td>{}</td>", r.note),
            None => format!("<td>{}</td>", meter(r.sign_ins, max, &[])),
        };
        writeln!(
            out,
            "<tr data-key=\"{}\" data-n=\"{}\" data-users=\"{}\">{}<td class=\"num\">{}</td><td class=\"num\">{}</td>{last}</tr>",
            Esc(r.name),
            r.sign_ins,
            r.users,
            text_cell(r.name),
            group(r.sign_ins),
            group(r.users)
        )?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</div>")?;
    Ok(())
}

/// A list cell: one item per line, `(none)` when empty.
fn list_cell<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let mut s = String::from("<td><ul>");
    let mut any = false;
    for item in items {
        any = true;
        let _ = write!(s, "<li>{}</li>", Esc(item));
    }
    if !any {
        return "<td class=\"none\" data-sort=\"\">(none)</td>".to_owned();
    }
    s.push_str("</ul></td>");
    s
}

/// Every user, as `--by-user` lists them: the same columns, the same order.
fn users_table(out: &mut impl Write, users: &[User], order: &[String]) -> Result<()> {
    writeln!(out, "<section id=\"users-section\">")?;
    writeln!(out, "<h2>Users ({})</h2>", group(users.len() as u64))?;
    if users.is_empty() {
        writeln!(out, "<p class=\"empty\">No sign-ins in this window.</p>")?;
        writeln!(out, "</section>")?;
        return Ok(());
    }
    writeln!(
        out,
        "<p class=\"muted\">One row per userPrincipalName (the sign-ins without one under (none)), \
         as <code>mfagap report --by-user</code> writes them. Click a heading to sort.</p>"
    )?;
    writeln!(out, "<div class=\"scroll\">")?;
    writeln!(out, "<table class=\"users sortable\" id=\"users\">")?;
    let heads = [
        ("user", "text", "userPrincipalName", ""),
        ("name", "text", "Display name", ""),
        (
            "signins",
            "number",
            "Sign-ins",
            " class=\"num\" aria-sort=\"descending\"",
        ),
        ("first", "time", "First seen", ""),
        ("last", "time", "Last seen", ""),
        ("reasons", "text", "Reasons", ""),
        ("apps", "text", "Apps", ""),
        ("legacy", "text", "Legacy clients", ""),
        ("policies", "text", "MFA policies not applied", ""),
    ];
    write!(out, "<thead><tr>")?;
    for (key, kind, label, more) in heads {
        write!(
            out,
            "<th data-key=\"{key}\" data-type=\"{kind}\"{more}><button type=\"button\">{label}</button></th>"
        )?;
    }
    writeln!(out, "</tr></thead>")?;
    writeln!(out, "<tbody>")?;
    for u in users {
        // To the second on screen; the whole instant in data-sort and the tooltip.
        let time = |t: Micros| {
            let t = timestamp::format(t);
            let shown = match t.split_once('T') {
                Some((date, time)) => format!("{date} {}", time.get(..8).unwrap_or(time)),
                None => t.clone(),
            };
            format!(
                "<td class=\"time\" data-sort=\"{0}\" title=\"{0}\">{1}</td>",
                Esc(&t),
                Esc(&shown)
            )
        };
        let reasons = user_reasons(u, order);
        let mut reasons_cell = String::from("<td class=\"reasons\"><ul>");
        for (i, r, n) in &reasons {
            let (class, _) = colour(*i);
            let _ = write!(
                reasons_cell,
                "<li><i class=\"sw r{class}\"></i>{}: {}</li>",
                Esc(r),
                n
            );
        }
        reasons_cell.push_str("</ul></td>");
        writeln!(
            out,
            "<tr data-user=\"{}\">{}{}<td class=\"num\" data-sort=\"{}\">{}</td>{}{}{}{}{}{}</tr>",
            Esc(&u.user_principal_name),
            text_cell(&u.user_principal_name),
            text_cell(u.user_display_name.as_deref().unwrap_or("")),
            u.sign_ins,
            group(u.sign_ins),
            time(u.first_seen),
            time(u.last_seen),
            reasons_cell,
            list_cell(u.apps.iter()),
            list_cell(u.legacy_clients.iter()),
            list_cell(u.policies_not_applied.iter()),
        )?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</div>")?;
    writeln!(out, "</section>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        assert_eq!(
            Esc("a<b>&\"c\"'d'\ne\r\tf\u{0}g").to_string(),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;&#10;e&#13;&#9;f\u{FFFD}g"
        );
        assert_eq!(Esc("Zoë 日本語").to_string(), "Zoë 日本語");
    }

    #[test]
    fn numbers_and_steps() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(5), 1);
        assert_eq!(nice_step(6), 2);
        assert_eq!(nice_step(11), 5);
        assert_eq!(nice_step(26), 10);
        assert_eq!(nice_step(u64::MAX), 5_000_000_000_000_000_000);
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(day_label(20432), "2025-12-10");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "0.0%");
    }
}
