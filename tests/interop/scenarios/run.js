#!/usr/bin/env node
// Interop scenario runner.
//
//   node run.js --a "CMD A" --b "CMD B" [--ref "CMD"] [--only NAME[,NAME...]]
//               [--groups] [--skip NAME[,NAME...]] [--workdir DIR] [--keep] [--seed S] [--timeout SECONDS]
//               [--a-name LABEL] [--b-name LABEL] [--list]
//
// Each CMD is a peer command line; the runner appends `--db <path>`. The word
// `libsignal` stands for the reference command (default: the libsignal peer
// next to this folder). Every scenario is first run with all roles on the
// reference peer, which records the expected outcome of each step; then with
// the pairing under test, compared step by step. See README.md.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { Run, ScenarioFailure, PeerBroken, splitCommand } = require('./harness');
const { scenarios } = require('./scenarios');

function usage(msg) {
  if (msg) process.stderr.write(`run.js: ${msg}\n`);
  process.stderr.write(
    'usage: node run.js --a "CMD A" --b "CMD B" [--ref "CMD"] [--only NAME[,NAME...]] [--groups]\n' +
      '                   [--workdir DIR] [--keep] [--seed S] [--timeout SECONDS] [--a-name L] [--b-name L] [--list]\n'
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    a: null,
    b: null,
    ref: null,
    only: null,
    groups: false,
    workdir: null,
    keep: false,
    seed: '1',
    timeout: 60,
    aName: null,
    bName: null,
    list: false,
  };
  const val = (i) => {
    if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--a': o.a = val(i++); break;
      case '--b': o.b = val(i++); break;
      case '--ref': o.ref = val(i++); break;
      case '--only': o.only = val(i++).split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--groups': o.groups = true; break;
      case '--skip': o.skip = val(i++).split(',').map((x) => x.trim()).filter(Boolean); break;
      case '--workdir': o.workdir = val(i++); break;
      case '--keep': o.keep = true; break;
      case '--seed': o.seed = val(i++); break;
      case '--timeout': o.timeout = Number(val(i++)); break;
      case '--a-name': o.aName = val(i++); break;
      case '--b-name': o.bName = val(i++); break;
      case '--list': o.list = true; break;
      case '-h':
      case '--help': usage();
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.list && (!o.a || !o.b)) usage('--a and --b are required');
  if (!(o.timeout > 0)) usage('--timeout must be a positive number of seconds');
  return o;
}

function fmtTime(ms) {
  return `${(ms / 1000).toFixed(1)}s`;
}

async function runOnce(scenario, mode, sides, dir, refSteps, opts) {
  fs.mkdirSync(dir, { recursive: true });
  const run = new Run({
    scenario,
    mode,
    sides,
    dir,
    refSteps,
    seed: opts.seed,
    timeoutMs: opts.timeout * 1000,
  });
  let failure = null;
  try {
    await scenario.run(run);
    if (mode === 'test' && run.steps.length < refSteps.length) {
      const n = run.steps.length + 1;
      failure = `step ${n} expected ${refSteps[n - 1].outcome} got end of scenario (${refSteps[n - 1].label})`;
    }
  } catch (e) {
    if (e instanceof ScenarioFailure) failure = e.message;
    else if (e instanceof PeerBroken) failure = `step ${run.steps.length + 1} expected a response got ${e.message}`;
    else failure = `runner error after step ${run.steps.length}: ${e && e.stack ? e.stack : e}`;
  }
  if (failure) {
    await run.killAll();
  } else {
    // End of input: every peer must exit 0.
    for (const [role, p] of run.peers) {
      const code = await p.close(10000);
      if (code !== 0 && !failure) {
        failure = `after step ${run.steps.length}: peer ${role} (${p.label}) exited with ${code === null ? 'no exit within 10s' : `code ${code}`} at end of input${p.stderrTail()}`;
      }
    }
    run.peers.clear();
  }
  try {
    fs.writeFileSync(
      path.join(dir, 'steps.txt'),
      run.steps.map((st, i) => `${i + 1}\t${st.outcome.length > 100 ? st.outcome.slice(0, 100) + '...' : st.outcome}\t${st.label}\n`).join('') +
        (failure ? `FAIL: ${failure}\n` : '')
    );
  } catch {}
  return { steps: run.steps, failure };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    for (const s of scenarios) process.stdout.write(`${s.name}${s.groups ? ' [--groups]' : ''}: ${s.description || ''}\n`);
    return 0;
  }
  const refCmd = opts.ref || `node ${JSON.stringify(path.resolve(__dirname, '..', 'libsignal-peer', 'peer.js'))}`;
  if (!opts.ref) {
    const mod = path.resolve(__dirname, '..', 'libsignal-peer', 'node_modules', '@signalapp', 'libsignal-client');
    if (!fs.existsSync(mod)) {
      usage(`the reference peer is not installed: run "npm ci" in ${path.dirname(path.dirname(path.dirname(mod)))}`);
    }
  }
  const resolve = (cmd) => (cmd === 'libsignal' ? refCmd : cmd);
  const A = { cmd: resolve(opts.a), label: opts.aName || (opts.a === 'libsignal' ? 'libsignal' : 'A') };
  const B = { cmd: resolve(opts.b), label: opts.bName || (opts.b === 'libsignal' ? 'libsignal' : 'B') };
  const REF = { cmd: refCmd, label: 'ref' };
  for (const c of [A.cmd, B.cmd, REF.cmd]) {
    try {
      splitCommand(c);
    } catch (e) {
      usage(e.message);
    }
  }

  let selected;
  if (opts.only) {
    selected = [];
    for (const name of opts.only) {
      const s = scenarios.find((x) => x.name === name);
      if (!s) usage(`unknown scenario ${name} (see --list)`);
      selected.push(s);
    }
  } else {
    selected = scenarios.filter((s) => opts.groups || !s.groups);
  }
  if (opts.skip) {
    for (const name of opts.skip)
      if (!scenarios.some((x) => x.name === name)) usage(`unknown scenario ${name} (see --list)`);
    selected = selected.filter((s) => !opts.skip.includes(s.name));
  }

  const ownWorkdir = !opts.workdir;
  const workdir = opts.workdir
    ? path.resolve(opts.workdir)
    : fs.mkdtempSync(path.join(os.tmpdir(), 'interop-scenarios-'));
  fs.mkdirSync(workdir, { recursive: true });
  const runDir = fs.mkdtempSync(path.join(workdir, 'run-'));

  // Both assignments of the pairing; one if the two commands are the same.
  const assignments = [{ id: 'ab', sides: [A, B] }];
  if (A.cmd !== B.cmd) assignments.push({ id: 'ba', sides: [B, A] });

  let passed = 0;
  let failed = 0;
  const t0 = Date.now();
  for (const sc of selected) {
    const ts = Date.now();
    const ref = await runOnce(sc, 'ref', [REF, REF], path.join(runDir, sc.name, 'ref'), null, opts);
    for (const asg of assignments) {
      const pairing = Object.entries(sc.roles)
        .map(([role, spec]) => `${role}=${asg.sides[spec.side].label}`)
        .join(' ');
      if (ref.failure) {
        failed++;
        process.stdout.write(`FAIL ${sc.name} (${pairing}): reference run failed: ${ref.failure}\n`);
        continue;
      }
      const res = await runOnce(sc, 'test', asg.sides, path.join(runDir, sc.name, asg.id), ref.steps, opts);
      if (res.failure) {
        failed++;
        process.stdout.write(`FAIL ${sc.name} (${pairing}): ${res.failure}\n`);
      } else {
        passed++;
        process.stdout.write(`ok ${sc.name} (${pairing})\n`);
      }
    }
    process.stderr.write(`  ${sc.name}: ${ref.steps.length} steps, ${fmtTime(Date.now() - ts)}\n`);
  }
  process.stderr.write(`total ${fmtTime(Date.now() - t0)}; workdir ${runDir}\n`);
  if (failed === 0 && !opts.keep) {
    fs.rmSync(runDir, { recursive: true, force: true });
    if (ownWorkdir) fs.rmSync(workdir, { recursive: true, force: true });
  } else {
    process.stderr.write(`peer databases and stderr logs kept in ${runDir}\n`);
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`run.js: ${e && e.stack ? e.stack : e}\n`);
    process.stdout.write('0 passed, 1 failed\n');
    process.exitCode = 1;
  }
);
