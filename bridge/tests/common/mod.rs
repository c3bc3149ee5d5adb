//! A real `nats-server -js` for the tests: 127.0.0.1, a free port, a
//! temporary store directory; killed when dropped.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// The server binary: `$NATS_SERVER`, else `nats-server` on the PATH or in
/// /usr/sbin (Debian's package puts it there).
pub fn server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl NatsServer {
    /// Starts a server, or `None` (with a message saying why the test is
    /// skipped) when no binary is found. The server picks its own port
    /// (`-p -1`) and writes it to a ports file: no race with other tests
    /// for a port.
    pub fn start() -> Option<NatsServer> {
        NatsServer::start_with_config("")
    }

    /// [`NatsServer::start`] with a configuration file of `conf`'s text
    /// (e.g. `max_payload: 8192`; empty: none), kept for restarts.
    pub fn start_with_config(conf: &str) -> Option<NatsServer> {
        let Some(bin) = server_binary() else {
            eprintln!(
                "SKIPPED: no nats-server binary (set NATS_SERVER, or run .ci/install-nats.sh)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = dir.path().join("ports");
        std::fs::create_dir(&ports).expect("ports dir");
        let mut cmd = Command::new(&bin);
        if !conf.is_empty() {
            let file = dir.path().join("nats.conf");
            std::fs::write(&file, conf).expect("config file");
            cmd.arg("-c").arg(file);
        }
        let mut child = cmd
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(&ports)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let file = ports.join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let port = std::fs::read_to_string(&file).ok().and_then(|text| {
                let at = text.find("127.0.0.1:")? + "127.0.0.1:".len();
                let digits: String = text[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<u16>().ok()
            });
            if let Some(port) = port {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(NatsServer {
                        child,
                        port,
                        _dir: dir,
                    });
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not start within 20 s");
    }

    /// Stops the server (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same store directory.
    pub fn restart(&mut self) {
        self.stop();
        let bin = server_binary().expect("a binary found before");
        let mut cmd = Command::new(&bin);
        let conf = self._dir.path().join("nats.conf");
        if conf.is_file() {
            cmd.arg("-c").arg(conf);
        }
        self.child = cmd
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self._dir.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("restart nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nats-server exited at restart: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nats-server did not restart within 20 s");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JetStream context on the server, with a stream `name` capturing
/// `subjects`.
pub async fn jetstream(
    server: &NatsServer,
    name: &str,
    subjects: &[&str],
) -> async_nats::jetstream::Context {
    jetstream_with(
        server,
        async_nats::jetstream::stream::Config {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
    .await
}

/// [`jetstream`] with a stream configuration of the caller's.
pub async fn jetstream_with(
    server: &NatsServer,
    config: async_nats::jetstream::stream::Config,
) -> async_nats::jetstream::Context {
    let name = config.name.clone();
    // JetStream may still be starting when the port opens: retry a while.
    let mut last_error = String::new();
    for _ in 0..100 {
        let client = match async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(server.url())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let js = async_nats::jetstream::new(client);
        match js.get_or_create_stream(config.clone()).await {
            Ok(_) => return js,
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no JetStream stream {name} within 10 s: {last_error}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A JetStream cluster of nodes on loopback ports.
pub struct Cluster {
    pub nodes: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes (`n1`..), or `None` without a binary.
    pub fn start(n: usize) -> Option<Cluster> {
        let Some(bin) = server_binary() else {
            eprintln!(
                "SKIPPED: no nats-server binary (set NATS_SERVER, or run .ci/install-nats.sh)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_list: Vec<String> = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let route_list = route_list.join(",");
        let mut nodes = Vec::new();
        for i in 0..n {
            let child = Command::new(&bin)
                .args(["-js", "-a", "127.0.0.1", "-p", &ports[i].to_string()])
                .arg("-sd")
                .arg(dir.path().join(format!("n{i}")))
                .args(["--server_name", &format!("n{i}"), "--cluster_name", "c"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                .args(["--routes", &route_list])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server");
            nodes.push(Some(child));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for &port in &ports {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "cluster did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(Cluster {
            nodes,
            ports,
            _dir: dir,
        })
    }

    pub fn addrs(&self) -> Vec<async_nats::ServerAddr> {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}").parse().expect("addr"))
            .collect()
    }

    /// SIGKILLs node `i` (named `n{i}`).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
