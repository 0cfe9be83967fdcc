//! A real OpenLDAP server (`slapd` from Debian, installed by `./dev deps`) for one test: a
//! temporary `slapd.conf` with the memberOf overlay, an mdb database in a temp dir, LDAP (with
//! StartTLS) and LDAPS on free loopback ports, TLS with a test CA made by rcgen, users and
//! groups loaded with `ldapadd`. Only authenticated binds may read; `userPassword` is for binds
//! only. Stopped (and its files removed) when dropped.
// Waiting for a real daemon to start reads the real clock.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE_DN: &str = "dc=example,dc=test";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=test";
pub const ADMIN_PW: &str = "directory admin pw";
pub const SERVICE_DN: &str = "cn=flowgate,ou=services,dc=example,dc=test";
pub const SERVICE_PW: &str = "service account pw 9";
pub const DAVE_PW: &str = "dave's directory pw";
pub const ERIN_PW: &str = "erin's directory pw";

/// Users and groups: dave (engineers, ops), erin (ops, disabled by `employeeType`), frank
/// (no group), and a user whose uid is a filter metacharacter soup.
fn data() -> String {
    format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n\n\
dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n\n\
dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: flowgate\nuserPassword: {SERVICE_PW}\n\n\
dn: uid=dave,ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\nuid: dave\ncn: Dave Directory\nsn: Directory\nmail: dave@example.test\nuserPassword: {DAVE_PW}\n\n\
dn: uid=erin,ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\nuid: erin\ncn: Erin\nsn: E\nmail: erin@example.test\nemployeeType: disabled\nuserPassword: {ERIN_PW}\n\n\
dn: uid=frank,ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\nuid: frank\ncn: Frank\nsn: F\nuserPassword: frank pw\n\n\
dn: cn=engineers,ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: engineers\nmember: uid=dave,ou=people,{BASE_DN}\n\n\
dn: cn=ops,ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: ops\nmember: uid=dave,ou=people,{BASE_DN}\nmember: uid=erin,ou=people,{BASE_DN}\n"
    )
}

pub struct Slapd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Plain LDAP (StartTLS) port.
    pub ldap_port: u16,
    /// LDAPS port.
    pub ldaps_port: u16,
}

impl Slapd {
    /// Writes the config, certificates and data, starts slapd and loads the entries.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        // A test CA and a server certificate for localhost.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "flowgate test directory CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(d.join("bind-password"), format!("{SERVICE_PW}\n")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload memberof\npidfile {dir}/slapd.pid\n\
TLSCACertificateFile {dir}/ca.pem\nTLSCertificateFile {dir}/server.pem\nTLSCertificateKeyFile {dir}/server.key\n\
database mdb\nsuffix \"{BASE_DN}\"\nrootdn \"{ADMIN_DN}\"\nrootpw \"{ADMIN_PW}\"\ndirectory {dir}/db\noverlay memberof\n\
access to attrs=userPassword by self write by anonymous auth by * none\naccess to * by users read by * none\n",
            dir = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        std::fs::write(d.join("data.ldif"), data()).unwrap();
        let mut s = Self {
            child: None,
            ldap_port: super::unused_port(),
            ldaps_port: super::unused_port(),
            dir,
        };
        s.start_again();
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &format!("ldap://127.0.0.1:{}", s.ldap_port),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
                "-f",
            ])
            .arg(s.dir.path().join("data.ldif"))
            .output()
            .expect("ldapadd runs (./dev deps installs ldap-utils)");
        assert!(
            out.status.success(),
            "ldapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    /// Starts the (stopped) server again on the same ports and data.
    pub fn start_again(&mut self) {
        let d = self.dir.path();
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.ldap_port, self.ldaps_port
        );
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("slapd.log")).unwrap())
            .spawn()
            .expect("slapd runs (./dev deps installs slapd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = [self.ldap_port, self.ldaps_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                break;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "slapd exited ({st}): {}",
                    std::fs::read_to_string(d.join("slapd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (its data stays for [`Slapd::start_again`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Applies an LDIF of changes (`changetype: modify` …) as the directory's admin.
    pub fn modify(&self, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        let out = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &format!("ldap://127.0.0.1:{}", self.ldap_port),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
                "-f",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn bind_password_file(&self) -> PathBuf {
        self.dir.path().join("bind-password")
    }

    /// A `sources:` entry named `key` for this server: LDAPS, or StartTLS on the plain port;
    /// `extra` holds more keys (`lookup_groups_from_user: true`), one per line, indented by 4.
    pub fn source_yaml(&self, key: &str, starttls: bool, extra: &str) -> String {
        let uri = if starttls {
            format!("ldap://localhost:{}", self.ldap_port)
        } else {
            format!("ldaps://localhost:{}", self.ldaps_port)
        };
        format!(
            "  {key}:\n    type: ldap\n    server_uri: \"{uri}\"\n    start_tls: {starttls}\n    ca_file: \"{}\"\n    bind_cn: \"{SERVICE_DN}\"\n    bind_password_file: \"{}\"\n    base_dn: \"{BASE_DN}\"\n    additional_user_dn: ou=people\n    additional_group_dn: ou=groups\n    user_object_filter: \"(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))\"\n    timeout: 2s\n{extra}",
            self.ca_file().display(),
            self.bind_password_file().display()
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
