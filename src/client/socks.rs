//! The SOCKS5 exchange with a proxy (RFC 1928, with the username/password method of RFC 1929),
//! sans-io: [`Socks5`] says how many bytes to read next (exactly what the protocol sends, so
//! nothing past the reply is ever read), takes them and says what to send.

use std::net::{IpAddr, SocketAddr};

use crate::error::ProxyFailure;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASSWORD: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xFF;
const CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// The most bytes [`Socks5::wants`] asks for at once: the rest of a reply naming a 255-byte
/// domain and its port.
pub(super) const MAX_READ: usize = 255 + 2;

/// Where the proxy is asked to connect.
#[derive(Debug, Clone, Copy)]
pub(super) enum SocksTarget<'a> {
    /// An address resolved by the client (`socks5://`), or an IP address in the URL.
    Addr(SocketAddr),
    /// A name the proxy resolves (`socks5h://`).
    Domain(&'a str, u16),
}

/// The client side of one SOCKS5 `CONNECT`.
#[derive(Debug)]
pub(super) struct Socks5 {
    stage: Stage,
    /// `user`, `password` for RFC 1929, when the proxy URL has credentials.
    credentials: Option<(Vec<u8>, Vec<u8>)>,
    connect: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The proxy's choice of method: `VER METHOD`.
    Method,
    /// The answer to the username and password: `VER STATUS`.
    Auth,
    /// The reply's head and the first byte of its address: `VER REP RSV ATYP X`.
    ReplyHead,
    /// The rest of the reply's address and its port.
    ReplyRest(usize),
    Done,
}

impl Socks5 {
    /// A `CONNECT` to `target`, with `credentials` (each 1 to 255 bytes, checked by
    /// [`Proxy`](super::Proxy)), and the greeting to send first.
    ///
    /// # Errors
    /// A domain name that is empty or longer than 255 bytes.
    pub(super) fn new(
        target: SocksTarget<'_>,
        credentials: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(Socks5, Vec<u8>), &'static str> {
        let mut connect = vec![VERSION, CONNECT, 0];
        let port = match target {
            SocksTarget::Addr(addr) => {
                match addr.ip() {
                    IpAddr::V4(ip) => {
                        connect.push(ATYP_V4);
                        connect.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        connect.push(ATYP_V6);
                        connect.extend_from_slice(&ip.octets());
                    }
                }
                addr.port()
            }
            SocksTarget::Domain(name, port) => {
                let len = u8::try_from(name.len())
                    .ok()
                    .filter(|&len| len > 0)
                    .ok_or("a SOCKS5 host name must have 1 to 255 bytes")?;
                connect.push(ATYP_DOMAIN);
                connect.push(len);
                connect.extend_from_slice(name.as_bytes());
                port
            }
        };
        connect.extend_from_slice(&port.to_be_bytes());
        let greeting = if credentials.is_some() {
            vec![VERSION, 2, NO_AUTH, USER_PASSWORD]
        } else {
            vec![VERSION, 1, NO_AUTH]
        };
        let socks = Socks5 {
            stage: Stage::Method,
            credentials,
            connect,
        };
        Ok((socks, greeting))
    }

    /// How many bytes to read next, exactly (at most [`MAX_READ`]); 0 once the tunnel is open.
    pub(super) fn wants(&self) -> usize {
        match self.stage {
            Stage::Method | Stage::Auth => 2,
            Stage::ReplyHead => 5,
            Stage::ReplyRest(n) => n,
            Stage::Done => 0,
        }
    }

    /// `true` once the proxy has connected the tunnel.
    pub(super) fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Takes the [`wants`](Self::wants) bytes read; returns what to send next, if anything.
    ///
    /// # Errors
    /// The proxy's refusal, or an answer that is not SOCKS5.
    pub(super) fn handle(&mut self, input: &[u8]) -> Result<Option<Vec<u8>>, ProxyFailure> {
        if input.len() != self.wants() || self.is_done() {
            return Err(ProxyFailure::Malformed(
                "a SOCKS5 answer of the wrong length",
            ));
        }
        match self.stage {
            Stage::Method => {
                if input[0] != VERSION {
                    return Err(ProxyFailure::Malformed("the answer is not SOCKS5"));
                }
                match (input[1], &self.credentials) {
                    (NO_AUTH, _) => {
                        self.stage = Stage::ReplyHead;
                        Ok(Some(self.connect.clone()))
                    }
                    (USER_PASSWORD, Some((user, password))) => {
                        let mut auth = vec![1];
                        for field in [user, password] {
                            // Both at most 255 bytes: `Proxy` checks them.
                            auth.push(u8::try_from(field.len()).unwrap_or(u8::MAX));
                            auth.extend_from_slice(&field[..field.len().min(255)]);
                        }
                        self.stage = Stage::Auth;
                        Ok(Some(auth))
                    }
                    (NO_ACCEPTABLE, _) => Err(ProxyFailure::SocksNoAcceptableMethod),
                    _ => Err(ProxyFailure::Malformed(
                        "the proxy chose an authentication method not offered",
                    )),
                }
            }
            Stage::Auth => {
                // RFC 1929 says version 1; some servers answer 5. Only the status matters.
                if input[1] != 0 {
                    return Err(ProxyFailure::SocksAuthFailed(input[1]));
                }
                self.stage = Stage::ReplyHead;
                Ok(Some(self.connect.clone()))
            }
            Stage::ReplyHead => {
                if input[0] != VERSION {
                    return Err(ProxyFailure::Malformed("the reply is not SOCKS5"));
                }
                if input[1] != 0 {
                    return Err(ProxyFailure::SocksRefused(input[1]));
                }
                // The bound address: its first byte is read; the rest and the port remain.
                let rest = match input[3] {
                    ATYP_V4 => 4 - 1 + 2,
                    ATYP_V6 => 16 - 1 + 2,
                    ATYP_DOMAIN => usize::from(input[4]) + 2,
                    _ => return Err(ProxyFailure::Malformed("an unknown SOCKS5 address type")),
                };
                self.stage = Stage::ReplyRest(rest);
                Ok(None)
            }
            Stage::ReplyRest(_) => {
                self.stage = Stage::Done;
                Ok(None)
            }
            Stage::Done => Err(ProxyFailure::Malformed("a SOCKS5 answer after the reply")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the exchange against the proxy's scripted answers; returns what the client sent.
    fn run(socks: &mut Socks5, answers: &[&[u8]]) -> Result<Vec<Vec<u8>>, ProxyFailure> {
        let mut sent = Vec::new();
        let mut input: Vec<u8> = answers.concat();
        while !socks.is_done() {
            let n = socks.wants();
            assert!(n <= MAX_READ);
            if input.len() < n {
                return Err(ProxyFailure::Closed);
            }
            let rest = input.split_off(n);
            if let Some(out) = socks.handle(&input)? {
                sent.push(out);
            }
            input = rest;
        }
        assert!(input.is_empty(), "read past the reply");
        Ok(sent)
    }

    #[test]
    fn connect_without_authentication_by_address_and_by_name() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let (mut socks, greeting) = Socks5::new(SocksTarget::Addr(addr), None).unwrap();
        assert_eq!(greeting, [5, 1, 0]);
        let sent = run(
            &mut socks,
            &[&[5, 0], &[5, 0, 0, 1, 127, 0, 0, 1, 0x23, 0x28]],
        )
        .unwrap();
        assert_eq!(sent, [vec![5, 1, 0, 1, 127, 0, 0, 1, 0x23, 0x28]]);

        let (mut socks, _) = Socks5::new(SocksTarget::Domain("localhost", 80), None).unwrap();
        let reply_v6 = [&[5u8, 0, 0, 4][..], &[0; 16], &[0, 80]].concat();
        let sent = run(&mut socks, &[&[5, 0], &reply_v6]).unwrap();
        assert_eq!(sent[0], b"\x05\x01\x00\x03\x09localhost\x00\x50");

        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        let (mut socks, _) = Socks5::new(SocksTarget::Addr(v6), None).unwrap();
        let reply_domain = b"\x05\x00\x00\x03\x04host\x01\xbb";
        let sent = run(&mut socks, &[&[5, 0], reply_domain]).unwrap();
        assert_eq!(sent[0][3], 4);
        assert_eq!(sent[0].len(), 4 + 16 + 2);
    }

    #[test]
    fn username_and_password_per_rfc_1929() {
        let credentials = Some((b"user".to_vec(), b"pass".to_vec()));
        let target = SocksTarget::Domain("h", 1);
        let (mut socks, greeting) = Socks5::new(target, credentials.clone()).unwrap();
        assert_eq!(greeting, [5, 2, 0, 2]);
        let reply = [5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let sent = run(&mut socks, &[&[5, 2], &[1, 0], &reply]).unwrap();
        assert_eq!(sent[0], b"\x01\x04user\x04pass");
        assert_eq!(sent[1], b"\x05\x01\x00\x03\x01h\x00\x01");

        let (mut socks, _) = Socks5::new(target, credentials.clone()).unwrap();
        assert_eq!(
            run(&mut socks, &[&[5, 2], &[1, 1]]),
            Err(ProxyFailure::SocksAuthFailed(1))
        );
        let (mut socks, _) = Socks5::new(target, None).unwrap();
        assert_eq!(
            run(&mut socks, &[&[5, 0xFF]]),
            Err(ProxyFailure::SocksNoAcceptableMethod)
        );
        // A method not offered: username/password when there are no credentials.
        let (mut socks, _) = Socks5::new(target, None).unwrap();
        assert!(matches!(
            run(&mut socks, &[&[5, 2]]),
            Err(ProxyFailure::Malformed(_))
        ));
    }

    #[test]
    fn refusals_and_foreign_answers() {
        let target = SocksTarget::Domain("h", 1);
        for code in 1..=8 {
            let (mut socks, _) = Socks5::new(target, None).unwrap();
            assert_eq!(
                run(&mut socks, &[&[5, 0], &[5, code, 0, 1, 0]]),
                Err(ProxyFailure::SocksRefused(code))
            );
        }
        for answers in [
            &[&b"HT"[..]][..],
            &[&[5, 0], &[4, 0, 0, 1, 0]],
            &[&[5, 0], &[5, 0, 0, 9, 0]],
        ] {
            let (mut socks, _) = Socks5::new(target, None).unwrap();
            assert!(
                matches!(run(&mut socks, answers), Err(ProxyFailure::Malformed(_))),
                "{answers:?}"
            );
        }
        let (mut socks, _) = Socks5::new(target, None).unwrap();
        assert!(socks.handle(&[5]).is_err(), "wrong length");
        assert!(Socks5::new(SocksTarget::Domain("", 1), None).is_err());
        assert!(Socks5::new(SocksTarget::Domain(&"a".repeat(256), 1), None).is_err());
    }
}
