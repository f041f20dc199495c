<?php

namespace Leaks\Models;

use Illuminate\Database\Eloquent\Model;

/**
 * A model first used during a request (never at boot): its booted() hook must run again in every
 * request whose worker reset the event listeners it registered.
 */
class Note extends Model
{
    protected $fillable = ['name'];

    public $timestamps = false;

    protected static function booted()
    {
        static::creating(function (Note $note) {
            $note->stamp = 'set-by-creating';
        });
    }
}
