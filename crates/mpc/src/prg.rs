//! Pseudo-random generator: AES-128 in counter mode (via the `aes` crate,
//! hardware AES where available). Two parties holding the same seed produce
//! identical streams, which is all correlated randomness needs.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use rand_core::{RngCore, SeedableRng};

/// Blocks encrypted per refill: large enough to amortise call overhead.
const BUF_BLOCKS: usize = 64;

pub struct Prg {
    seed: [u8; 16],
    cipher: Aes128,
    counter: u128,
    buf: [u8; BUF_BLOCKS * 16],
    pos: usize,
}

impl Prg {
    pub fn new(seed: [u8; 16]) -> Self {
        Self {
            seed,
            cipher: Aes128::new(GenericArray::from_slice(&seed)),
            counter: 0,
            buf: [0; BUF_BLOCKS * 16],
            pos: BUF_BLOCKS * 16,
        }
    }

    pub fn from_entropy() -> Self {
        let mut seed = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut seed);
        Self::new(seed)
    }

    pub fn seed(&self) -> [u8; 16] {
        self.seed
    }

    fn refill(&mut self) {
        let mut blocks = [GenericArray::default(); BUF_BLOCKS];
        for b in blocks.iter_mut() {
            b.copy_from_slice(&self.counter.to_le_bytes());
            self.counter = self.counter.wrapping_add(1);
        }
        self.cipher.encrypt_blocks(&mut blocks);
        for (dst, b) in self.buf.chunks_exact_mut(16).zip(blocks.iter()) {
            dst.copy_from_slice(b);
        }
        self.pos = 0;
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        if self.pos + 8 > self.buf.len() {
            self.refill();
        }
        let v = u64::from_le_bytes(self.buf[self.pos..self.pos + 8].try_into().unwrap());
        self.pos += 8;
        v
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            if self.pos == self.buf.len() {
                self.refill();
            }
            let take = (self.buf.len() - self.pos).min(out.len() - done);
            out[done..done + take].copy_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            done += take;
        }
    }
}

impl RngCore for Prg {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        Prg::next_u64(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.fill(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill(dest);
        Ok(())
    }
}

impl SeedableRng for Prg {
    type Seed = [u8; 16];
    fn from_seed(seed: [u8; 16]) -> Self {
        Prg::new(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_fill_matches_words() {
        let mut a = Prg::new([7; 16]);
        let mut b = Prg::new([7; 16]);
        let words: Vec<u64> = (0..300).map(|_| a.next_u64()).collect();
        let mut bytes = vec![0u8; 300 * 8];
        b.fill(&mut bytes);
        let again: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(words, again);
        assert_ne!(Prg::new([8; 16]).next_u64(), Prg::new([7; 16]).next_u64());
    }
}
