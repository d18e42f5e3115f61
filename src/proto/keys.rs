//! Masking keys: where a client's come from.
//!
//! RFC 6455 §5.3 wants keys an observer cannot predict. By default they come from the thread's
//! cryptographic generator, which costs no memory per connection; a test or a fuzzer gives a
//! seed instead, so that a run repeats exactly (still a cryptographic generator, seeded).

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::Role;

/// The source of masking keys for one connection: none for a server, which never masks.
#[derive(Debug)]
pub struct MaskKeys(Source);

#[derive(Debug)]
enum Source {
    Unmasked,
    /// The thread's generator, drawn 64 bits at a time: two keys per draw, the second kept here
    /// (each half of a cryptographic generator's output is as unpredictable as a 32-bit draw).
    Entropy {
        spare: Option<[u8; 4]>,
    },
    Seeded(Box<StdRng>),
}

impl MaskKeys {
    /// Keys for the side `role` names, from the thread's generator.
    pub fn new(role: Role) -> Self {
        MaskKeys(match role {
            Role::Client => Source::Entropy { spare: None },
            Role::Server => Source::Unmasked,
        })
    }

    /// Keys for the side `role` names, from a generator seeded with `seed`: the same seed gives
    /// the same keys.
    pub fn seeded(role: Role, seed: [u8; 32]) -> Self {
        MaskKeys(match role {
            Role::Client => Source::Seeded(Box::new(StdRng::from_seed(seed))),
            Role::Server => Source::Unmasked,
        })
    }

    /// The key for the next frame (`None`: frames are not masked).
    pub fn next_key(&mut self) -> Option<[u8; 4]> {
        match &mut self.0 {
            Source::Unmasked => None,
            Source::Entropy { spare } => Some(match spare.take() {
                Some(key) => key,
                None => {
                    let [a, b, c, d, e, f, g, h] = rand::random::<u64>().to_ne_bytes();
                    *spare = Some([e, f, g, h]);
                    [a, b, c, d]
                }
            }),
            Source::Seeded(rng) => Some(rng.random()),
        }
    }
}
