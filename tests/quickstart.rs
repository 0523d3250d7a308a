//! The README's first command, as a new user runs it: the quickstart example as a process, in
//! a fresh working directory. Its exit code is 0 only if every step of the story held; a second
//! run on the same directory shows what the first left and holds too; `--memory` needs no file.

#[path = "support/bot.rs"]
mod bot;

use std::process::Command;

fn run(dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(bot::example_binary("quickstart"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the quickstart failed ({:?}):\n{said}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

#[test]
fn the_quickstart_tells_the_whole_story_and_a_second_run_finds_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), &[]);
    assert!(first.contains("run 1 (sqlite stores)"), "{first}");
    for step in [
        "Ann's Messenger is linked to her account",
        "the visitor got a technical contact",
        "after his Yes, the visitor's Messenger is Bob's",
        "the message is in Ann's conversation",
        "the transcript shows it delivered, then read",
        "12 by Messenger",
        "her link logs her in and leads to lesson 4",
        "the question has three answers",
        "the flow followed the \"Too fast\" branch",
        "Every step did what it says.",
    ] {
        assert!(first.contains(step), "{step:?} in\n{first}");
    }
    assert!(!first.contains('✗'), "{first}");
    assert!(dir.path().join("quickstart.db").exists());

    let second = run(dir.path(), &[]);
    assert!(second.contains("run 2 (sqlite stores)"), "{second}");
    assert!(
        second.contains("run 1's newsletter reached 42 recipient(s) (32 sent, 10 skipped)"),
        "{second}"
    );
    assert!(second.contains("Every step did what it says."), "{second}");

    let elsewhere = tempfile::tempdir().unwrap();
    let memory = run(elsewhere.path(), &["--memory"]);
    assert!(memory.contains("run 1 (memory stores)"), "{memory}");
    assert!(memory.contains("Every step did what it says."), "{memory}");
    assert!(!elsewhere.path().join("quickstart.db").exists());
}
