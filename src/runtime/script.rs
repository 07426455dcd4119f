//! What a simulated container does: its command line, read as a tiny shell script.
//!
//! No process runs. The runtime reads `command` + `args` and decides, by these documented
//! rules (also in `docs/nodes.md`), how long the container runs, how it exits, what it logs
//! and which files exist in it over time:
//!
//! * no `command` and no `args`, or a program the simulation does not know (`nginx`,
//!   `python app.py`, …): a server that **runs until stopped** and exits 0 on SIGTERM;
//! * `sh -c "<script>"` / `bash -c "<script>"` (also `/bin/sh`, `/bin/bash`), or a bare
//!   `sleep` / `echo` / `true` / `false` / `exit` / `touch` / `rm`: the script's statements,
//!   separated by `;`, `&&`, `||` or new lines, run in order:
//!   - `sleep N` (seconds; `s`/`m`/`h` suffixes allowed) takes N simulated seconds;
//!     `sleep infinity`, `while true…`, `tail -f …` run forever;
//!   - `exit N` ends the script with exit code N; `false` ends it with 1;
//!   - `echo TEXT` writes TEXT to the container's log;
//!   - `touch PATH` creates a file, `rm [-f] PATH` removes it (exec probes read them);
//!   - anything else takes no time and succeeds;
//!   - a script that reaches its end exits 0.
//! * A shell script ignores SIGTERM (PID 1 has no default handler), so stopping it takes the
//!   whole grace period and ends with a SIGKILL (exit code 137); other programs exit 0 on
//!   SIGTERM after the runtime's stop time.
//!
//! The same reading is used for `exec` probes and `preStop` hooks: `cat PATH`, `test -f PATH`
//! and `ls PATH` succeed when the file exists in the container at that moment.

use std::collections::BTreeSet;
use std::time::Duration;

/// One statement, at the simulated time offset it runs at.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Echo(String),
    Touch(String),
    Remove(String),
}

/// How a script ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Never, unless stopped.
    RunsForever,
    /// Exits with `code` after running for `after`.
    Exits { after: Duration, code: i32 },
}

/// A container's (or an exec's) behaviour, read from its command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// Side effects with the offset they happen at, in order.
    pub steps: Vec<(Duration, Step)>,
    pub ending: Ending,
    /// Whether PID 1 is a shell (ignores SIGTERM).
    pub is_shell: bool,
}

const SHELLS: [&str; 4] = ["sh", "bash", "/bin/sh", "/bin/bash"];
const BUILTINS: [&str; 11] = [
    "sleep", "echo", "true", "false", "exit", "touch", "rm", "cat", "test", "ls", "date",
];

impl Script {
    /// Read a container's `command` + `args`.
    pub fn parse(command: &[String], args: &[String]) -> Script {
        let argv: Vec<&str> = command
            .iter()
            .chain(args.iter())
            .map(String::as_str)
            .collect();
        let server = Script {
            steps: Vec::new(),
            ending: Ending::RunsForever,
            is_shell: false,
        };
        let Some(first) = argv.first() else {
            return server;
        };
        if SHELLS.contains(first) {
            let body = match argv.iter().position(|a| *a == "-c") {
                Some(i) => argv[i + 1..].first().copied().unwrap_or(""),
                // An interactive shell with no script waits on stdin: it runs forever.
                None => {
                    return Script {
                        is_shell: true,
                        ..server
                    }
                }
            };
            let mut s = Script::from_text(body);
            s.is_shell = true;
            return s;
        }
        if BUILTINS.contains(first) {
            return Script::from_text(&argv.join(" "));
        }
        server
    }

    /// Read a script's text (statements separated by `;`, `&&`, `||`, new lines).
    pub fn from_text(text: &str) -> Script {
        let mut at = Duration::ZERO;
        let mut steps = Vec::new();
        let normalized = text
            .replace("&&", ";")
            .replace("||", ";")
            .replace('\n', ";");
        for statement in normalized.split(';') {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let Some(cmd) = words.first() else { continue };
            let rest = || unquote(&words[1..].join(" "));
            match *cmd {
                "sleep" => match words.get(1).copied() {
                    Some("infinity") => return Script::forever(steps),
                    Some(n) => at += parse_seconds(n).unwrap_or(Duration::ZERO),
                    None => {}
                },
                "while" | "tail" => return Script::forever(steps),
                "exit" => {
                    let code = words.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                    return Script::exits(steps, at, code);
                }
                "false" => return Script::exits(steps, at, 1),
                "echo" => steps.push((at, Step::Echo(rest()))),
                "touch" => words[1..]
                    .iter()
                    .for_each(|p| steps.push((at, Step::Touch(p.to_string())))),
                "rm" => words[1..]
                    .iter()
                    .filter(|p| !p.starts_with('-'))
                    .for_each(|p| steps.push((at, Step::Remove(p.to_string())))),
                _ => {}
            }
        }
        Script::exits(steps, at, 0)
    }

    fn forever(steps: Vec<(Duration, Step)>) -> Script {
        Script {
            steps,
            ending: Ending::RunsForever,
            is_shell: false,
        }
    }

    fn exits(steps: Vec<(Duration, Step)>, after: Duration, code: i32) -> Script {
        Script {
            steps,
            ending: Ending::Exits { after, code },
            is_shell: false,
        }
    }

    /// The log lines written by `elapsed` (simulated time since start).
    pub fn output_by(&self, elapsed: Duration) -> Vec<String> {
        self.steps
            .iter()
            .take_while(|(t, _)| *t <= elapsed)
            .filter_map(|(_, s)| match s {
                Step::Echo(line) => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    /// The files that exist at `elapsed` (simulated time since start).
    pub fn files_at(&self, elapsed: Duration) -> BTreeSet<String> {
        let mut files = BTreeSet::new();
        for (t, step) in &self.steps {
            if *t > elapsed {
                break;
            }
            match step {
                Step::Touch(p) => {
                    files.insert(p.clone());
                }
                Step::Remove(p) => {
                    files.remove(p);
                }
                Step::Echo(_) => {}
            }
        }
        files
    }
}

/// The result of running a command inside a container (an `exec` probe, a `preStop` hook).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub output: String,
    /// How long the command takes (simulated).
    pub duration: Duration,
}

/// Run `cmd` in a container whose filesystem holds `files`: the script rules above, plus
/// `cat`/`test -f`/`ls PATH` failing (exit 1) when PATH does not exist.
pub fn exec(cmd: &[String], files: &BTreeSet<String>) -> ExecResult {
    let text = match cmd.first().map(String::as_str) {
        Some(sh) if SHELLS.contains(&sh) => match cmd.iter().position(|a| a == "-c") {
            Some(i) => cmd.get(i + 1).cloned().unwrap_or_default(),
            None => String::new(),
        },
        _ => cmd.join(" "),
    };
    let normalized = text.replace("&&", ";").replace('\n', ";");
    let mut output = Vec::new();
    for statement in normalized.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let path = words.iter().skip(1).find(|w| !w.starts_with('-'));
        let missing = |p: Option<&&str>| p.is_some_and(|p| !files.contains(*p));
        match words.first().copied() {
            Some("cat") | Some("test") | Some("ls") if missing(path) => {
                let p = path.copied().unwrap_or_default();
                output.push(format!("{}: {p}: No such file or directory", words[0]));
                return ExecResult {
                    exit_code: 1,
                    output: output.join("\n"),
                    duration: Duration::ZERO,
                };
            }
            _ => {}
        }
    }
    let script = Script::from_text(&text);
    output.extend(script.output_by(Duration::MAX));
    let (exit_code, duration) = match script.ending {
        Ending::Exits { after, code } => (code, after),
        // A command that never ends is cut off by the probe's timeout.
        Ending::RunsForever => (-1, Duration::MAX),
    };
    ExecResult {
        exit_code,
        output: output.join("\n"),
        duration,
    }
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'').to_string()
}

/// `5`, `2.5`, `30s`, `2m`, `1h`.
fn parse_seconds(s: &str) -> Option<Duration> {
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1.0),
        'm' => (&s[..s.len() - 1], 60.0),
        'h' => (&s[..s.len() - 1], 3600.0),
        'd' => (&s[..s.len() - 1], 86400.0),
        _ => (s, 1.0),
    };
    let secs: f64 = num.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs * mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn containers_without_a_command_are_servers() {
        assert_eq!(Script::parse(&[], &[]).ending, Ending::RunsForever);
        let nginx = Script::parse(&strings(&["nginx", "-g", "daemon off;"]), &[]);
        assert_eq!(nginx.ending, Ending::RunsForever);
        assert!(!nginx.is_shell);
    }

    #[test]
    fn shell_scripts_sleep_echo_and_exit() {
        let s = Script::parse(
            &strings(&["sh", "-c"]),
            &strings(&["echo starting; sleep 5 && echo boom; exit 3"]),
        );
        assert!(s.is_shell);
        assert_eq!(
            s.ending,
            Ending::Exits {
                after: Duration::from_secs(5),
                code: 3
            }
        );
        assert_eq!(s.output_by(Duration::from_secs(1)), vec!["starting"]);
        assert_eq!(s.output_by(Duration::MAX), vec!["starting", "boom"]);
    }

    #[test]
    fn bare_commands_and_forever_loops() {
        let sleep = Script::parse(&strings(&["sleep", "2m"]), &[]);
        assert_eq!(
            sleep.ending,
            Ending::Exits {
                after: Duration::from_secs(120),
                code: 0
            }
        );
        assert_eq!(
            Script::parse(&strings(&["false"]), &[]).ending,
            Ending::Exits {
                after: Duration::ZERO,
                code: 1
            }
        );
        let forever = Script::parse(&strings(&["/bin/sh", "-c", "sleep infinity"]), &[]);
        assert_eq!(forever.ending, Ending::RunsForever);
        let looping = Script::parse(&strings(&["sh", "-c", "while true; do sleep 1; done"]), &[]);
        assert_eq!(looping.ending, Ending::RunsForever);
    }

    /// The liveness example of the Kubernetes docs: the file exists for 30 s, then is removed.
    #[test]
    fn files_follow_the_script_timeline_for_exec_probes() {
        let s = Script::parse(
            &strings(&["/bin/sh", "-c"]),
            &strings(&["touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600"]),
        );
        let probe = strings(&["cat", "/tmp/healthy"]);
        let early = exec(&probe, &s.files_at(Duration::from_secs(10)));
        assert_eq!(early.exit_code, 0);
        let late = exec(&probe, &s.files_at(Duration::from_secs(31)));
        assert_eq!(late.exit_code, 1);
        assert_eq!(late.output, "cat: /tmp/healthy: No such file or directory");
    }

    #[test]
    fn exec_commands_report_exit_codes_and_time() {
        let none = BTreeSet::new();
        assert_eq!(exec(&strings(&["true"]), &none).exit_code, 0);
        assert_eq!(exec(&strings(&["sh", "-c", "exit 2"]), &none).exit_code, 2);
        let slow = exec(&strings(&["sh", "-c", "sleep 5; echo done"]), &none);
        assert_eq!(slow.duration, Duration::from_secs(5));
        assert_eq!(slow.output, "done");
    }
}
