// Preloaded into kinesis-local (`node -r scripts/loopback.cjs …/main.js`): it has no host setting and binds every
// interface; this makes each server it opens listen on 127.0.0.1 only, whatever address it asks for.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (first !== null && typeof first === 'object') {
    // listen({ port, host, … }): a path (a Unix socket) stays as it is.
    if (first.path === undefined) args[0] = { ...first, host: '127.0.0.1' };
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === 'string') args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
