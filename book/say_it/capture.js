// The microphone's samples, as they arrive: an AudioWorklet that posts each block (mono) to say_it.js.
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const block = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < block.length; i++) block[i] += channel[i] / channels.length;
      }
      this.port.postMessage(block, [block.buffer]);
    }
    return true;
  }
}

registerProcessor("capture", Capture);
