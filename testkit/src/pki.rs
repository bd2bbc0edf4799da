//! Certificates made at test time with the real `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `openssl req` arguments for a new, unencrypted P-256 key.
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Test certificates, made with the real `openssl` command (as the README
/// tells operators to): CA `ca1` issues the reporter's certificate `server`
/// (SAN 127.0.0.1 and localhost) and the gatherers' `client`; CA `ca2` issues
/// a `rogue` client certificate. Each NAME has `NAME.pem` and `NAME.key`.
pub struct Pki {
    /// The directory holding the files.
    pub dir: PathBuf,
}

impl Pki {
    /// Makes the two CAs and three certificates in `dir`.
    pub fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.ca("ca1");
        pki.ca("ca2");
        pki.leaf(
            "server",
            "ca1",
            "serverAuth",
            Some("IP:127.0.0.1,DNS:localhost"),
        );
        pki.leaf("client", "ca1", "clientAuth", None);
        pki.leaf("rogue", "ca2", "clientAuth", None);
        pki
    }

    /// The path of `NAME.pem`.
    pub fn pem(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pem")).display().to_string()
    }

    /// The path of `NAME.key`.
    pub fn key(&self, name: &str) -> String {
        self.dir.join(format!("{name}.key")).display().to_string()
    }

    /// A self-signed CA `NAME` (P-256).
    pub fn ca(&self, name: &str) {
        self.new_key(
            "-x509",
            name,
            &[
                "-out",
                &self.pem(name),
                "-days",
                "2",
                "-subj",
                &format!("/CN=hostpulse test {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    /// A certificate `NAME` issued by CA `ca` for `usage` (serverAuth or
    /// clientAuth), with subject alternative names `san`.
    pub fn leaf(&self, name: &str, ca: &str, usage: &str, san: Option<&str>) {
        self.leaf_for(name, name, ca, usage, san);
    }

    /// Like [`Pki::leaf`], with subject `CN=cn` (a node id pattern such as
    /// `loadgen-*`, where one certificate serves many nodes).
    pub fn leaf_for(&self, name: &str, cn: &str, ca: &str, usage: &str, san: Option<&str>) {
        let mut extensions = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        );
        if let Some(san) = san {
            extensions.push_str(&format!("subjectAltName={san}\n"));
        }
        self.issue(name, cn, ca, Some(&extensions), "2");
    }

    /// An X.509 **v1** certificate `NAME` issued by `ca`: what `openssl x509
    /// -req` makes on OpenSSL 3.0 when given no `-extfile`.
    pub fn leaf_v1(&self, name: &str, ca: &str) {
        self.issue(name, name, ca, None, "2");
    }

    /// A certificate like [`Pki::leaf`] valid only from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`), made with `openssl ca`, the one openssl command
    /// of OpenSSL 3.0 that sets both dates: `20200101000000Z` to
    /// `20200102000000Z` for an expired one, dates to come for one not yet
    /// valid.
    pub fn leaf_dated(
        &self,
        name: &str,
        ca: &str,
        usage: &str,
        san: Option<&str>,
        (start, end): (&str, &str),
    ) {
        let mut extensions = format!("extendedKeyUsage={usage}\n");
        if let Some(san) = san {
            extensions.push_str(&format!("subjectAltName={san}\n"));
        }
        let db = self.dir.join(format!("{name}.db"));
        std::fs::create_dir_all(&db).expect("create the openssl ca database");
        std::fs::write(db.join("index.txt"), "").expect("write index.txt");
        std::fs::write(db.join("serial"), "01\n").expect("write serial");
        let config = format!(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n",
            db = db.display()
        );
        let config_file = db.join("ca.cnf").display().to_string();
        std::fs::write(&config_file, config).expect("write ca.cnf");
        let ext = self.dir.join(format!("{name}.ext")).display().to_string();
        std::fs::write(&ext, extensions).expect("write the extensions file");
        let csr = self.dir.join(format!("{name}.csr")).display().to_string();
        self.request(name, name, &csr);
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &config_file,
            "-cert",
            &self.pem(ca),
            "-keyfile",
            &self.key(ca),
            "-in",
            &csr,
            "-out",
            &self.pem(name),
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            &ext,
        ]);
    }

    /// Key `NAME.key` and certificate request `csr` for subject `CN=cn`.
    fn request(&self, name: &str, cn: &str, csr: &str) {
        self.new_key("-new", name, &["-out", csr, "-subj", &format!("/CN={cn}")]);
    }

    /// `openssl req MODE` with a new P-256 key written to `NAME.key`, then
    /// `args`.
    fn new_key(&self, mode: &str, name: &str, args: &[&str]) {
        let key = self.key(name);
        let mut all = vec!["req", mode];
        all.extend(NEW_KEY);
        all.extend(["-keyout", key.as_str()]);
        all.extend(args);
        self.openssl(&all);
    }

    /// Key, request and certificate `NAME` (subject `CN=cn`) signed by
    /// `ca`, valid for `days` from now, v3 with `extensions` or v1 without.
    fn issue(&self, name: &str, cn: &str, ca: &str, extensions: Option<&str>, days: &str) {
        let csr = self.dir.join(format!("{name}.csr")).display().to_string();
        let ext = self.dir.join(format!("{name}.ext"));
        if let Some(extensions) = extensions {
            std::fs::write(&ext, extensions).expect("write the extensions file");
        }
        self.request(name, cn, &csr);
        let (cert, ca_cert, ca_key) = (self.pem(name), self.pem(ca), self.key(ca));
        let ext = ext.display().to_string();
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            days,
        ];
        if extensions.is_some() {
            args.extend(["-extfile", &ext]);
        }
        self.openssl(&args);
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl is installed (tests/run.sh installs the Debian package)");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
